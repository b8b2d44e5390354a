-- GCRA on one key: the arithmetic of gcra.rs, in microseconds. Lua numbers are doubles,
-- exact up to 2^53: microseconds since the epoch fit, nanoseconds would not.
--
-- KEYS[1]  the bucket; its value is the TAT (theoretical arrival time) in µs.
-- ARGV[1]  interval_us, at least 1
-- ARGV[2]  tolerance_us: (burst - 1) * interval
-- ARGV[3]  burst, at least 1
-- ARGV[4]  now_us, or '' to read Redis's clock: one clock for every gateway
-- ARGV[5]  'take' or 'refund'
-- Returns {allowed 0/1, remaining, reset_us, retry_after_us}.
--
-- One key per bucket, so it runs on Redis Cluster. A key past its TAT is a full bucket,
-- the same as no key: every write sets the key to expire then, so idle buckets cost nothing.

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local mode = ARGV[5]
if not interval or interval < 1 or not tolerance or tolerance < 0 or not burst or burst < 1 then
  return redis.error_reply('portcullis gcra: bad interval, tolerance or burst')
end

local now
if ARGV[4] == '' then
  -- Redis 7 replicates a script's effects, not the script, so reading TIME before a write
  -- is allowed. Redis 3.2 to 6 must be asked for that; Redis 7 ignores the call.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = tonumber(ARGV[4])
  if not now then
    return redis.error_reply('portcullis gcra: bad now')
  end
end

-- floor(a / b) for non-negative integers, exact even where the division rounds up.
local function div_floor(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  end
  return q
end

local function div_ceil(a, b)
  local q = div_floor(a, b)
  if q * b < a then
    q = q + 1
  end
  return q
end

-- The bucket's state after an allowed request left it at `tat` (Gcra::outcome_after).
local function allowed_after(tat)
  local ahead = math.max(tat - now, 0)
  local remaining = 0
  if ahead <= tolerance + interval then
    remaining = div_floor(tolerance + interval - ahead, interval)
  end
  return {1, math.min(remaining, burst), ahead, 0}
end

-- Stores `tat`, expiring when the bucket is full again (at least 1 ms). A TAT already
-- reached is a full bucket: no key at all.
local function store(tat)
  if tat <= now then
    redis.call('DEL', KEYS[1])
  else
    local ttl_ms = math.max(div_ceil(tat - now, 1000), 1)
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
  end
end

local stored = tonumber(redis.call('GET', KEYS[1]))

if mode == 'take' then
  local tat = now
  if stored and stored > now then
    tat = stored
  end
  local ahead = tat - now
  if ahead > tolerance then
    -- Refused: not counted, the key is left as it is. The wait rounds up, so waiting
    -- exactly Retry-After is always enough.
    return {0, 0, ahead, math.ceil(ahead - tolerance)}
  end
  local new_tat = tat + interval
  store(new_tat)
  return allowed_after(new_tat)
elseif mode == 'refund' then
  if not stored then
    return allowed_after(now)
  end
  local new_tat = stored - interval
  store(new_tat)
  return allowed_after(new_tat)
end
return redis.error_reply('portcullis gcra: mode must be take or refund')
