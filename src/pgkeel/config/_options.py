"""The ``options`` connection parameter: libpq hands it to the server, which splits it like a
command line; parsed and rendered here so that ``-c`` settings can be merged and redacted."""

from __future__ import annotations

from pgkeel.errors import ConfigError

#: The server's switches that take an argument (``process_postgres_switches``'s getopt string).
_SWITCH_ARGS = frozenset("BcCDdfhkNprStvW-")
_SWITCH_FLAGS = frozenset("bEeFijlnOPsT")


def _split_options(options: str) -> list[str]:
    """Split like the server's ``pg_split_opts``: on whitespace; a backslash keeps the next
    character (a space included) as it is."""
    words: list[str] = []
    word: list[str] = []
    in_word = escaped = False
    for ch in options:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def parse_options(options: str) -> tuple[list[str], dict[str, str]]:
    """Parse libpq's ``options`` string: return the switches other than settings (as words)
    and the settings (``-c name=value``, ``-cname=value``, ``--name=value``), names in lower
    case with ``-`` read as ``_``, as the server does. Raise ConfigError for a setting without
    a value."""
    words = _split_options(options)
    switches: list[str] = []
    settings: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            # Not quoted back: the stray word may be a value, and a value may be a secret.
            raise ConfigError(
                f"options: word {i} is not a switch; settings are written -c name=value "
                "(a space inside a value is written \\ followed by the space)"
            )
        j = 1
        while j < len(word):
            flag = word[j]
            if flag in _SWITCH_ARGS:
                arg = word[j + 1 :]
                if not arg:
                    if i >= len(words):
                        raise ConfigError(f"options: -{flag} needs a value, e.g. -c name=value")
                    arg = words[i]
                    i += 1
                if flag in "c-":
                    name, eq, value = arg.partition("=")
                    if not eq or not name:
                        raise ConfigError(
                            f"options: setting {name or arg!r} has no value; write -c name=value"
                        )
                    settings[name.replace("-", "_").lower()] = value
                else:
                    switches += [f"-{flag}", arg]
                break
            if flag not in _SWITCH_FLAGS:
                raise ConfigError(
                    f"options: unknown switch -{flag}; settings are written -c name=value"
                )
            switches.append(f"-{flag}")
            j += 1
    return switches, settings


def _escape_option(word: str) -> str:
    return "".join("\\" + ch if ch == "\\" or ch.isspace() else ch for ch in word)


def render_options(switches: list[str], settings: tuple[tuple[str, str], ...] = ()) -> str:
    """The ``options`` string for ``switches`` and ``settings``, escaped for the server."""
    words = [_escape_option(w) for w in switches]
    for name, value in settings:
        words += ["-c", _escape_option(f"{name}={value}")]
    return " ".join(words)
