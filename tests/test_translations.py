"""The Swedish catalogue: every message translated, nothing fuzzy, compiled, and in use.

A message added to the code shows in English to Swedish staff until the catalogue
has it: ``makemessages -l sv`` brings it in untranslated (or fuzzy, with a guess
that is often wrong), and these tests fail until it is translated and compiled.
"""

from __future__ import annotations

import ast
import gettext
import re
from collections import Counter
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

import django_pjpixel
from django_pjpixel.record import sync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.record.test_reconciliation import order

LC_MESSAGES = Path(django_pjpixel.__file__).parent / "locale" / "sv" / "LC_MESSAGES"

# The messages whose Swedish is the English: names, codes, and words Swedish shares.
SAME_IN_SWEDISH = {
    "API: %(url)s",
    "HTTP %(status)d",
    "Id",
    "Order",
    "order",
    "Pixel %(pixel)s.",
    "Pixel: %(pixel)s",
    "Pixel: %s",
    "pixel",
    "Prisjakt",
    "Status",
    "status",
}

PLACEHOLDER = re.compile(r"%(?:\([a-z_]+\))?[sd]")


class Entry:
    """One entry of a .po file: its flags and its strings by keyword (``msgstr[0]``...)."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.strings: dict[str, str] = {}

    @property
    def msgid(self) -> str:
        return self.strings["msgid"]

    @property
    def plural(self) -> str | None:
        return self.strings.get("msgid_plural")

    def translations(self) -> dict[str, str]:
        return {key: value for key, value in self.strings.items() if key.startswith("msgstr")}


def read_po(path: Path) -> list[Entry]:
    """The entries of ``path``, the header left out (enough of the format for this file)."""
    entries, entry, key = [], Entry(), ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry.strings:
                entries.append(entry)
            entry, key = Entry(), ""
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry.strings[key] += ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            entry.strings[key] = ast.literal_eval(value)
    return [entry for entry in entries if entry.msgid]


ENTRIES = read_po(LC_MESSAGES / "django.po")


def test_every_message_is_translated_and_none_is_fuzzy() -> None:
    assert len(ENTRIES) > 250
    fuzzy = [entry.msgid for entry in ENTRIES if "fuzzy" in entry.flags]
    untranslated = [entry.msgid for entry in ENTRIES if not all(entry.translations().values())]
    assert (fuzzy, untranslated) == ([], [])
    assert all(len(entry.translations()) == 2 for entry in ENTRIES if entry.plural)


def test_the_translations_keep_the_placeholders() -> None:
    for entry in ENTRIES:
        for key, text in entry.translations().items():
            source = entry.plural if key == "msgstr[1]" else entry.msgid
            assert Counter(PLACEHOLDER.findall(text)) == Counter(
                PLACEHOLDER.findall(source or "")
            ), entry.msgid


def test_the_compiled_catalogue_is_the_po_file_in_swedish() -> None:
    """django.mo answers every message with the .po file's translation (it is compiled
    from the current .po), and that translation is Swedish, not the English again."""
    with (LC_MESSAGES / "django.mo").open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    for entry in ENTRIES:
        if entry.plural is None:
            assert catalogue.gettext(entry.msgid) == entry.strings["msgstr"]
            assert (entry.strings["msgstr"] != entry.msgid) or entry.msgid in SAME_IN_SWEDISH
        else:
            one = catalogue.ngettext(entry.msgid, entry.plural, 1)
            many = catalogue.ngettext(entry.msgid, entry.plural, 2)
            assert (one, many) == (entry.strings["msgstr[0]"], entry.strings["msgstr[1]"])
            assert (one, many) != (entry.msgid, entry.plural), entry.msgid
    # The allowlist names messages that exist, so it does not outlive them.
    assert not SAME_IN_SWEDISH - {entry.msgid for entry in ENTRIES}


@pytest.mark.django_db
def test_the_reconciliation_page_in_swedish(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    order(pjpixel_api, "ok")
    order(pjpixel_api, "missing", listed=False)
    sync.sync_recent()
    with translation.override("sv"):
        page = admin_client.get(reverse("admin:django_pjpixel_reconciliation")).content.decode()
    assert "<h1>Avstämning</h1>" in page
    assert 'value="Jämför"' in page
    assert "Prisjakts händelser, senast synkade: " in page
    for label in (
        "Stämmer överens",
        "Avvikande belopp",
        "Saknas hos Prisjakt",
        "Okänd för butiken",
    ):
        assert label in page
    assert "<h2>Skillnader</h2>" in page
    assert "Exportera skillnaderna som CSV" in page
    assert "Skickat av butiken" in page
    assert "Reconciliation" not in page
    assert "Missing at Prisjakt" not in page
    assert re.search(r"1234(\.00)? SEK, 2 artiklar", page)  # the missing order, as sent
    assert "2 items" not in page
