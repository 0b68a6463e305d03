"""A user's task file, written with lgtransfer's public API only: digit-string sorting.

    sort_digits   3141592=  ->  1123459   (ascending)
    sort_desc     3141592=  ->  9543211   (descending)

Length = number of digits. Both are made by one function per example (`simple_task`);
docs/tasks.md, "Your own tasks", explains the form. Does sorting short strings borrow length
generalization from sorting long strings the other way round? `sort.yaml` asks.
"""

from lgtransfer.tasks import simple_task


def digits(rng, length):
    return "".join(str(d) for d in rng.integers(0, 10, length))


@simple_task("sort_digits", family="string", length_unit="digits", max_length=64,
             space_size=lambda n: 10.0 ** n)
def sort_digits(rng, length):
    s = digits(rng, length)
    return s + "=", "".join(sorted(s))


@simple_task("sort_desc", family="string", length_unit="digits", max_length=64,
             space_size=lambda n: 10.0 ** n)
def sort_desc(rng, length):
    s = digits(rng, length)
    return s + "=", "".join(sorted(s, reverse=True))
