"""Which URLs may carry the gateway's OpenRouter key (reference §1 auth, §5 polling_url).

The bearer key goes only to the configured API: same scheme, host and port, and a path
under the configured base path. Checks run on the parsed httpx.URL that is then sent, so
the check and the request can never disagree about where a URL points.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from .errors import bad_answer, url_refused

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Job ids are OpenRouter's ("job-abc123", UUIDs); anything else could smuggle a path.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class ApiBase:
    """The configured base URL, e.g. https://openrouter.ai/api/v1."""

    scheme: str
    host: str
    port: int
    path: str  # without trailing slash: "/api/v1", or "" at the root

    @classmethod
    def parse(cls, base_url: str) -> ApiBase:
        """Raise ValueError unless base_url is an absolute http(s) URL without credentials."""
        try:
            url = httpx.URL(base_url.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        if url.userinfo or url.query or url.fragment:
            raise ValueError("must not contain credentials, a query or a fragment")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        return cls(url.scheme, url.host, port, url.path.rstrip("/"))

    @property
    def root(self) -> str:
        default = self.port == _DEFAULT_PORTS[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        netloc = host if default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"

    @functools.lru_cache(maxsize=256)  # noqa: B019 - a few fixed paths; the base lives as long
    def endpoint(self, path: str) -> httpx.URL:
        """Absolute URL of an API path such as "/models" (cached: parsing costs ~100 µs)."""
        return self.resolve(self.root + path)

    def job_url(self, job_id: str) -> httpx.URL:
        """URL of a video job, from an id OpenRouter gave us (reference §5)."""
        if not _JOB_ID.fullmatch(job_id):
            raise bad_answer("a video job id has unexpected characters.")
        return self.endpoint(f"/videos/{job_id}")

    def resolve(self, url_or_path: str) -> httpx.URL:
        """Resolve a relative or absolute URL and refuse it unless it belongs to this API.

        A relative polling_url ("/api/v1/videos/job-1") is resolved against the base URL's
        scheme and host, as OpenRouter's cookbook does with new URL(polling_url, origin).
        """
        try:
            url = httpx.URL(self.root + "/").join(url_or_path.strip())
        except (httpx.InvalidURL, ValueError):
            raise url_refused() from None
        if not self.allows(url):
            raise url_refused()
        return url.copy_with(fragment=None)

    def allows(self, url: httpx.URL) -> bool:
        if url.scheme != self.scheme or url.host != self.host or url.userinfo:
            return False
        if (url.port or _DEFAULT_PORTS.get(url.scheme)) != self.port:
            return False
        if not url.path.startswith(self.path + "/"):
            return False
        # httpx removes literal dot segments; encoded ones (%2e%2e) survive until a server
        # decodes them, so look at the decoded segments too.
        raw_path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
        segments = [unquote(segment) for segment in raw_path.split("/")]
        return not any(segment in (".", "..") for segment in segments)
