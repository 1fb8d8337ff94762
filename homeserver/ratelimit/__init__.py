"""Rate limits: token buckets per action and requester, in this process or shared through Redis.

`limiter.RateLimiter` is what handlers and services call; `buckets.Buckets`
is where the tokens live: `local.LocalBuckets` (one process) or
`redis.RedisBuckets` (every process of the server, one Lua script per check).
"""
