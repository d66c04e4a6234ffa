"""Redaction: no credential or personal data reaches an LLM prompt.

Everything an agent sends (alert labels and annotations, evidence) goes through
`Redactor.redact` first. Matches become `[REDACTED:<kind>]` and are counted by kind, and the
counts are recorded on the decision (and summed in the incident state), so the audit shows
that something was held back without showing what.

Patterns, most specific first: private key blocks, credentials in URLs, JWTs, well-known
API key and token formats (Anthropic, OpenAI, AWS, GitHub, GitLab, Slack, Google, Vault),
bearer tokens, `password=...`-style pairs, and any value under a key that names a secret.
Emails by default; IP addresses only when configured, because hosts are often named by IP
and redacting them hides which machine is broken.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

_SECRET_KEY = r"(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"  # noqa: S105 - a pattern

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    ),
    ("url_credentials", re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")),
    (
        "api_key",
        re.compile(
            r"\b(?:sk-ant-[A-Za-z0-9_-]{16,}|sk-[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
            r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hv[sbr]\.[A-Za-z0-9_-]{20,})"
        ),
    ),
    ("bearer_token", re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{8,}")),
    (
        "password",
        # `password=x`, `DB_PASSWORD: x`, `"client_secret": "x"`: the key ends in a secret word.
        re.compile(
            rf"(?i)(?<![A-Za-z0-9_-])[A-Za-z0-9_-]*{_SECRET_KEY}[\"']?\s*[:=]\s*"
            r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
    ),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
]
# Candidates only: each is checked with `ipaddress`, so times (12:30:01) and versions stay.
_IP_CANDIDATE = re.compile(
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"  # IPv4, a :port may follow
    r"|(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])"  # IPv6
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_SECRET_NAME = re.compile(rf"(?i){_SECRET_KEY}|authorization|cookie")


class Redactor:
    def __init__(self, *, emails: bool = True, ips: bool = False) -> None:
        self._patterns: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
            (kind, pattern, None) for kind, pattern in _PATTERNS if emails or kind != "email"
        ]
        if ips:
            self._patterns.append(("ip", _IP_CANDIDATE, _is_ip))

    def redact(self, value: Any) -> tuple[Any, dict[str, int]]:
        """A copy of `value` (str, or dicts and lists of them) with secrets replaced, and counts."""
        counts: Counter[str] = Counter()
        return self._walk(value, counts), dict(sorted(counts.items()))

    def _walk(self, value: Any, counts: Counter[str]) -> Any:
        if isinstance(value, str):
            return self._text(value, counts)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and _SECRET_NAME.search(key) and isinstance(item, str) and item:
                    # A label or field named like a secret: its whole value is one.
                    counts["credential"] += 1
                    out[key] = "[REDACTED:credential]"
                else:
                    out[key] = self._walk(item, counts)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, counts) for item in value]
        return value

    def _text(self, text: str, counts: Counter[str]) -> str:
        for kind, pattern, check in self._patterns:

            def replace(
                match: re.Match[str], kind: str = kind, check: Callable[[str], bool] | None = check
            ) -> str:
                if check is not None and not check(match.group(0)):
                    return match.group(0)
                counts[kind] += 1
                value = match.groupdict().get("value")
                if value is not None:  # keep `password=` so the reader knows what was there
                    start = match.start("value") - match.start()
                    return match.group(0)[:start] + f"[REDACTED:{kind}]"
                return f"[REDACTED:{kind}]"

            text = pattern.sub(replace, text)
        return text


def merge_counts(*counts: dict[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))
