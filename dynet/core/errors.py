"""Exception classes shared by the operations."""


class IndexOutOfRange(IndexError, ValueError):
    """An index outside the dimension it selects from (a pick, a lookup, a target class, e[i]).
    Both an IndexError and a ValueError: DyNet raises ValueError for most of these ("Index error
    in PickNegLogSoftmax", "Out-of-bounds attempt to access index 9 for LookupParameter") and
    IndexError for e[i], and DyNet code catches whichever it met."""
