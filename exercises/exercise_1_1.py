"""Exercise 1.1: the integers two lists have in common.

Run ``python exercises/exercise_1_1.py`` to check the worked examples; it prints nothing
when they all hold.
"""


def common_elements(first: list[int], second: list[int]) -> list[int]:
    """Return the integers found in both lists, each once, in the order of ``first``.

    Runs in O(len(first) + len(second)) time.
    """
    in_second = set(second)
    emitted: set[int] = set()
    result: list[int] = []
    for value in first:
        if value in in_second and value not in emitted:
            emitted.add(value)
            result.append(value)
    return result


if __name__ == "__main__":
    assert common_elements([1, 5, 70, 24, 155], [17, 24, 25, 24, 68, 155]) == [24, 155]
    assert common_elements([5, 109, 49, 3], [63, 1, 44, 9]) == []
    assert common_elements([1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 1]) == [1]
