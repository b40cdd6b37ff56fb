"""Whether a name from a token reads as what it is: Unicode normal form and one confusable script. Pure.

A name is shown to approvers, written into policy, labels and audit records. Two tricks make one name
look like another: compatibility characters (fullwidth letters U+FF41.., mathematical bold U+1D41A..,
ligatures such as U+FB01), which NFKC folds into the plain letters, and look-alike letters of another
script (Cyrillic U+0430 for the ``a`` of ``alice``). Folding a name into its NFKC form would make the
fullwidth ``alice`` *become* ``alice``: whoever registered it at the IdP would be alice to policy. So
a name must already be in its NFKC form (canonically equivalent spellings, such as a decomposed
``e`` + U+0301, are composed first: they are the same text) and is refused otherwise. A name that
mixes letters of Latin, Cyrillic and Greek (the scripts that share look-alike letters) is refused as
well; a name written wholly in one of them passes (a Cyrillic name is a name, not a trick).
"""

from __future__ import annotations

import unicodedata

#: Scripts whose letters imitate each other (Latin a e o p c x, Cyrillic and Greek twins): use one.
CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def normal_name(value: str) -> str:
    """The name in NFC (the same text, composed): how it is compared and stored."""
    return unicodedata.normalize("NFC", value)


def name_refusal(value: str) -> str | None:
    """Why ``value`` (already NFC) may not be a principal's name, or None."""
    if unicodedata.normalize("NFKC", value) != value:
        return (
            "it contains compatibility characters (such as fullwidth or styled letters) that read as "
            "other letters"
        )
    scripts = sorted(confusable_scripts(value))
    if len(scripts) > 1:
        return (
            f"it mixes {' and '.join(s.capitalize() for s in scripts)} letters, which can imitate each other"
        )
    return None


def confusable_scripts(value: str) -> set[str]:
    """The confusable scripts whose letters ``value`` uses (digits, punctuation and marks have none)."""
    found = set()
    for char in value:
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in CONFUSABLE_SCRIPTS:
                found.add(script)
    return found
