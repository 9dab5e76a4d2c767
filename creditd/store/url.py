"""Where Redis is, from one URL: a single server, a Sentinel-managed primary or a Cluster.

    redis://[user:password@]host:port[/db]          one server (rediss:// for TLS)
    unix://[user:password@]/path/to/socket[?db=n]   one server on a local socket
    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]
    redis+cluster://[user:password@]host:port[,host:port...]

`rediss+sentinel://` and `rediss+cluster://` speak TLS to every node. The user and password are the
data nodes' (an ACL user, or only a password for the default user); sentinels are asked without.
TLS files (CA, client certificate and key) come from the [redis] settings.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

import msgspec

from creditd.errors import ConfigError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
MAX_SEED_NODES = 64
MAX_PORT = 65535
FIELD = "redis.url"

Kind = Literal["single", "sentinel", "cluster"]


class RedisTarget(msgspec.Struct, frozen=True):
    kind: Kind
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    db: int = 0


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    if "@" not in netloc:
        return None, None, netloc
    userinfo, hosts = netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urllib.parse.unquote(user) or None, urllib.parse.unquote(password) or None, hosts


def _nodes(url: str, hosts: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
            raise ConfigError(f"{FIELD}: {redact(url)}: each node needs host:port, got {item!r}")
        nodes.append((host, int(port)))
    if not nodes or len(nodes) > MAX_SEED_NODES:
        raise ConfigError(f"{FIELD}: {redact(url)}: between 1 and {MAX_SEED_NODES} nodes")
    return tuple(nodes)


def _db(url: str, text: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or int(text) > 15:
        raise ConfigError(f"{FIELD}: {redact(url)}: database must be a number 0-15, got {text!r}")
    return int(text)


def parse_redis_url(url: str) -> RedisTarget:
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ConfigError(f"{FIELD}: {redact(url)!r} is not a URL (scheme://...)")
    tls = scheme.startswith("rediss")
    if scheme in SINGLE_SCHEMES:
        parts = urllib.parse.urlsplit(url)
        return RedisTarget("single", url, username=parts.username, password=parts.password, tls=tls)
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        known = ", ".join(f"{name}://" for name in SINGLE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES)
        raise ConfigError(f"{FIELD}: unknown scheme {scheme!r}; one of {known}")
    netloc, _, path = rest.partition("/")
    username, password, hosts = _credentials(netloc)
    nodes = _nodes(url, hosts)
    if scheme in CLUSTER_SCHEMES:
        if path.strip("/"):
            raise ConfigError(f"{FIELD}: {redact(url)}: a cluster has one database; no path after the nodes")
        return RedisTarget("cluster", url, nodes, username=username, password=password, tls=tls)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ConfigError(f"{FIELD}: {redact(url)}: name the Sentinel service: redis+sentinel://host:port/<service>")
    return RedisTarget("sentinel", url, nodes, urllib.parse.unquote(service), username, password, tls, _db(url, db))
