"""Secrets in connection strings: which parameters and settings are secret, and how they are
masked (``redact``) or removed from any text (``scrub``) before a log line, error or repr."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgkeel.config._options import _escape_option, parse_options, render_options
from pgkeel.errors import ConfigError


def _secret_params() -> frozenset[str]:
    # libpq marks the parameters it would hide in a dialog with "*"; the SCRAM keys (debug
    # options, "D") are credentials too.
    names = {"password", "sslpassword", "oauth_client_secret"}
    names |= {"scram_client_key", "scram_server_key"}
    names.update(o.keyword.decode() for o in pq.Conninfo.get_defaults() if o.dispchar == b"*")
    return frozenset(names)


#: libpq connection parameters whose value is a secret: masked in every repr, log and error.
SECRET_PARAMS = _secret_params()

#: Words that make a ``-c name=value`` setting's value count as a secret.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential", "key")


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact(conninfo: str) -> str:
    """Return ``conninfo`` (URL or key=value) with every secret replaced by ``***``: the
    password, ``sslpassword`` and the like, and ``-c`` settings named like a secret."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return _scrub(conninfo, _secrets_in(conninfo))
    for key in SECRET_PARAMS & params.keys():
        params[key] = "***"
    if params.get("options"):
        try:
            switches, settings = parse_options(str(params["options"]))
        except ConfigError:
            params["options"] = _scrub(str(params["options"]), _secrets_in(conninfo))
        else:
            params["options"] = render_options(
                switches, tuple((k, "***" if _secret_name(k) else v) for k, v in settings.items())
            )
    return make_conninfo("", **params)


def _secrets_of(params: Mapping[str, Any]) -> list[str]:
    out = [str(params[k]) for k in SECRET_PARAMS & params.keys() if params[k]]
    if params.get("options"):
        try:
            _, settings = parse_options(str(params["options"]))
        except ConfigError:
            return out
        # A value of 3 characters or fewer is no secret, and masking it would mangle messages.
        out += [v for k, v in settings.items() if _secret_name(k) and len(v) > 3]
    return out


def _secrets_in(conninfo: str) -> list[str]:
    """The secrets in a possibly malformed connection string, to scrub them from errors."""
    try:
        return _secrets_of(conninfo_to_dict(conninfo))
    except psycopg.ProgrammingError:
        pass
    found: list[str] = []
    if "://" in conninfo:
        try:
            parts = urlsplit(conninfo)
            netloc, query = parts.netloc, parts.query
        except ValueError:
            netloc = conninfo.split("://", 1)[1].split("/", 1)[0]
            query = conninfo.partition("?")[2]
        userinfo = netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.append(unquote(userinfo.split(":", 1)[1].split(",")[0]))
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in SECRET_PARAMS:
                found.append(value)
    names = "|".join(sorted(SECRET_PARAMS, key=len, reverse=True))
    for match in re.finditer(rf"\b(?:{names})\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", conninfo):
        found.append(match.group(1).strip("'"))
    return [s for s in found if s]


def _scrub(text: str, secrets: list[str] | str | None) -> str:
    if isinstance(secrets, str):
        secrets = [secrets]
    forms: set[str] = set()
    for secret in secrets or ():
        forms |= {secret, quote(secret, safe=""), quote(secret), _escape_option(secret)}
        forms.add(secret.replace("\\", "\\\\").replace("'", "\\'"))
    # Longest first, so a secret inside another is not half-replaced.
    for form in sorted((f for f in forms if f), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def scrub(text: str, conninfo: str) -> str:
    """Remove ``conninfo``'s secrets from ``text`` (an error message about to be shown)."""
    return _scrub(text, _secrets_in(conninfo))
