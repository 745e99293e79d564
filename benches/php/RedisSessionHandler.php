<?php
// NeNe's Redis session handler (docs/decisions/0006), on phpredis: a session is the plain
// string under `sess_{id}`, written with SETEX for session.gc_maxlifetime
// seconds; Redis expires the keys, so gc() does nothing. There is no lock: two
// requests of one session both read the old value and the last write wins.
// That is the behaviour benches/compare.sh measures against nene's locking.

declare(strict_types=1);

final class RedisSessionHandler implements SessionHandlerInterface, SessionUpdateTimestampHandlerInterface
{
    /** What validateId() read, so that read() does not ask Redis a second time. */
    private ?string $validatedId = null;
    private string|false $validatedData = false;

    public function __construct(
        private readonly Redis $redis,
        private readonly int $ttl,
    ) {
    }

    public function open(string $path, string $name): bool
    {
        return true;
    }

    public function close(): bool
    {
        return true;
    }

    public function read(string $id): string|false
    {
        $data = $id === $this->validatedId ? $this->validatedData : $this->redis->get("sess_$id");
        $this->validatedId = null;

        return $data === false ? '' : $data;
    }

    public function write(string $id, string $data): bool
    {
        return $this->redis->setex("sess_$id", $this->ttl, $data) === true;
    }

    public function destroy(string $id): bool
    {
        $this->redis->del("sess_$id");

        return true;
    }

    public function gc(int $max_lifetime): int|false
    {
        return 0;
    }

    // session.use_strict_mode: an id Redis does not hold is refused, and PHP
    // makes a new one (the read is kept for read(), one GET per request).
    public function validateId(string $id): bool
    {
        $this->validatedId = $id;
        $this->validatedData = $this->redis->get("sess_$id");

        return $this->validatedData !== false;
    }

    // session.lazy_write: unchanged data only has its expiry renewed.
    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->redis->expire("sess_$id", $this->ttl) === true;
    }
}
