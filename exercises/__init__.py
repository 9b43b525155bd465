"""Solutions to the book's practice exercises, one module per exercise."""
