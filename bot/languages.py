"""The languages codethread writes, with the aliases people type for them.

Each language knows its fence tag (for highlighting in Slack, Discord and the terminal) and
the file extension used when a snippet is sent as a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.errors import UnknownLanguage

__all__ = ["LANGUAGES", "Language", "Languages"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Language:
    name: str  # canonical key, stored with the session
    label: str  # what users read
    fence: str  # info string of a fenced code block
    extension: str  # file name suffix, without the dot
    aliases: tuple[str, ...] = ()


LANGUAGES: tuple[Language, ...] = (
    Language(
        name="python", label="Python", fence="python", extension="py", aliases=("py", "python3")
    ),
    Language(
        name="javascript",
        label="JavaScript",
        fence="javascript",
        extension="js",
        aliases=("js", "node", "nodejs"),
    ),
    Language(
        name="typescript", label="TypeScript", fence="typescript", extension="ts", aliases=("ts",)
    ),
    Language(name="bash", label="Bash", fence="bash", extension="sh", aliases=("sh", "shell")),
    Language(name="c", label="C", fence="c", extension="c"),
    Language(name="cpp", label="C++", fence="cpp", extension="cpp", aliases=("c++", "cxx")),
    Language(name="go", label="Go", fence="go", extension="go", aliases=("golang",)),
    Language(name="rust", label="Rust", fence="rust", extension="rs", aliases=("rs",)),
    Language(name="java", label="Java", fence="java", extension="java"),
    Language(name="csharp", label="C#", fence="csharp", extension="cs", aliases=("c#", "cs")),
    Language(name="ruby", label="Ruby", fence="ruby", extension="rb", aliases=("rb",)),
    Language(name="php", label="PHP", fence="php", extension="php"),
    Language(name="kotlin", label="Kotlin", fence="kotlin", extension="kt", aliases=("kt",)),
    Language(name="swift", label="Swift", fence="swift", extension="swift"),
    Language(name="sql", label="SQL", fence="sql", extension="sql"),
    Language(name="html", label="HTML", fence="html", extension="html"),
    Language(name="css", label="CSS", fence="css", extension="css"),
    Language(name="lua", label="Lua", fence="lua", extension="lua"),
    Language(name="r", label="R", fence="r", extension="r"),
)


class Languages:
    """An allow-list of languages, looked up by name or alias, case-insensitively."""

    def __init__(self, languages: Iterable[Language] = LANGUAGES) -> None:
        self._all = tuple(languages)
        self._index: dict[str, Language] = {}
        for lang in self._all:
            for key in (lang.name, *lang.aliases):
                self._index[key.lower()] = lang

    def __iter__(self) -> Iterator[Language]:
        return iter(self._all)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._index

    def names(self) -> list[str]:
        return [lang.name for lang in self._all]

    def get(self, word: str) -> Language:
        """The language called ``word``; raises :class:`UnknownLanguage` naming the choices."""
        try:
            return self._index[word.strip().lower()]
        except KeyError:
            raise UnknownLanguage(word, self.names()) from None
