"""The hot path of AccessKey signatures: a short cache of keys and their decrypted secrets, and
the replay store.

Replay store: with GREEN_REDIS_URL, one `SET <key> 1 NX EXAT <window end>` per nonce (or
signature) in Redis, atomic across processes and hosts; without it, the SeenRequest table,
whose unique key does the same (green.services.request_claim). Redis runs without the table,
so a Redis that restarts without persistence reopens the claims of the last 15 minutes.

Key cache: a key's row (with its user) and its decrypted secret are kept in the process for
ACCESS_KEY_CACHE_SECONDS. A change made through green.services (revoke, admin edits) drops the
entry at once in the process that made it. Other processes:
- with GREEN_REDIS_URL, the change bumps a generation counter in Redis, read in the same round
  trip as the replay claim: the next request anywhere reloads the key (immediate);
- without it, within ACCESS_KEY_CACHE_SECONDS (5 s by default).
Changes made elsewhere (a user deactivated, the row edited by hand) take that bound too.
"""

import copy
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings

from green.models import AccessKey

# Attributes that ModelBackend caches permissions in, per user object.
_PERM_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")


@dataclass
class CachedKey:
    key: AccessKey  # never handed out: for_request() gives copies
    secret: str
    loaded_at: float
    generation: int | None = None  # Redis's counter when loaded (None without Redis)


_keys: dict[str, CachedKey] = {}
_client: redis.Redis | None = None
_client_url = ""


def redis_client() -> redis.Redis | None:
    global _client, _client_url
    url = settings.GREEN_REDIS_URL
    if not url:
        return None
    if _client is None or _client_url != url:
        _client, _client_url = redis.Redis.from_url(url, socket_timeout=2), url
    return _client


def key_get(access_key_id: str) -> CachedKey | None:
    """The key by id, from the cache if loaded less than ACCESS_KEY_CACHE_SECONDS ago.
    Raises crypto.DecryptionError if its secret cannot be decrypted."""
    cached = _keys.get(access_key_id)
    if (
        cached is not None
        and time.monotonic() - cached.loaded_at < settings.ACCESS_KEY_CACHE_SECONDS
    ):
        return cached
    return key_load(access_key_id)


def key_load(access_key_id: str) -> CachedKey | None:
    client = redis_client()
    # Read the generation before the row: a change committed after this read bumps it.
    generation = int(client.get(generation_key(access_key_id)) or 0) if client else None
    loaded_at = time.monotonic()
    key = AccessKey.objects.select_related("user").filter(access_key_id=access_key_id).first()
    if key is None:
        _keys.pop(access_key_id, None)
        return None
    cached = CachedKey(key, key.secret, loaded_at, generation)
    _keys[access_key_id] = cached
    return cached


def key_forget(access_key_id: str) -> None:
    _keys.pop(access_key_id, None)


def key_changed(access_key_id: str) -> None:
    """Call after a change to the key's row has committed."""
    key_forget(access_key_id)
    if (client := redis_client()) is not None:
        client.incr(generation_key(access_key_id))


def for_request(cached: CachedKey) -> AccessKey:
    """A copy of the key, with a copy of its user, for one request: permissions are cached on
    the user object, and must not outlive the request."""
    key, user = copy.copy(cached.key), copy.copy(cached.key.user)
    for name in _PERM_CACHES:
        user.__dict__.pop(name, None)
    key.user = user
    return key


def claim(*, cached: CachedKey, kind: str, value: str, expires_at: datetime) -> tuple[bool, bool]:
    """Record a nonce or signature as used, in Redis: (claimed, the cached key is stale)."""
    client = redis_client()
    name = "green:seen:" + seen_key(cached.key.access_key_id, kind, value)
    with client.pipeline(transaction=False) as pipe:
        pipe.set(name, 1, nx=True, exat=max(int(expires_at.timestamp()) + 1, int(time.time()) + 1))
        pipe.get(generation_key(cached.key.access_key_id))
        claimed, generation = pipe.execute()
    return bool(claimed), int(generation or 0) != cached.generation


def seen_key(access_key_id: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{access_key_id}\n{kind}\n{value}".encode()).hexdigest()


def generation_key(access_key_id: str) -> str:
    return f"green:key-generation:{access_key_id}"


def cache_clear() -> None:
    _keys.clear()
