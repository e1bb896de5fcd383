"""What ``impl`` means at the drop-in call sites."""

from typing import Optional

__all__ = ["auto_impl"]


def auto_impl(impl: Optional[str]) -> Optional[str]:
    """The compat meaning of ``impl``: ``'cuda'`` (any case, the originals' default) is the automatic choice
    (None); others unchanged (explicit, strict requests)."""
    if isinstance(impl, str) and impl.lower() == "cuda":
        return None
    return impl
