/**
 * The read script of RedisTier's batched reads: values and remaining lifetimes of many keys in
 * one call, bounded by a byte budget per call (the keys past it are left for a next call), and
 * the calls one after the other that read them all.
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import { READ_COMMAND } from "./commands.js"
import { type LargeValues, MARKER_MARGIN_MS } from "./largeValues.js"
import { NOT_A_STRING } from "./notAString.js"

/** Whether a reply of the read script leaves the key to a next call (its byte budget was spent). */
export const isLater = (raw: unknown): boolean => Array.isArray(raw)

/**
 * Reads the values and remaining lifetimes (PTTL) of KEYS[2..] in one atomic command, as a flat
 * array `[value1, pttl1, value2, pttl2, ...]`; a key holding nothing answers `false, -2` (a
 * miss), one holding an empty string answers it with its PTTL (no entry is empty: decoded as a
 * foreign value; GETRANGE answers "" for a missing key too, told apart by that PTTL), one
 * holding something other than a string `false, -3` (notAString.ts: GETRANGE's
 * WRONGTYPE, or, for the keys an MGET answered nil for, one EXISTS of them all and, only when
 * some exist, an EXISTS each). KEYS[1] is the namespace's large-value marker (see largeValues.ts).
 * While it is absent the values are read with MGET (below); while it is there, each with GETRANGE
 * 0 ARGV[1], so that a large value is never copied into the script (an MGET of a 20 MB value
 * took Redis 200 ms inside a script). Either way a value of `largeValueBytes` or more answers
 * its length (a number) instead of itself and is then fetched on the large-value connection, so
 * a large value never holds up the small ones of its batch. On 64 small values the MGET costs
 * the script about a fifth less time than a GETRANGE each.
 * One call reads about ARGV[2] (`largeValueBytes`) bytes of values at most: the MGET goes in
 * slices (4 keys, then as many as the bytes left hold at the mean size read so far, at most 32),
 * and once the bytes read (a large value's included: the GETRANGE's, or, without the marker, the
 * whole value) reach that many, the keys after them answer an empty array
 * (LATER), read by a next call, so that neither the script's copies nor its reply grow with the
 * batch (one MGET of 512 values of 100 kB took Redis 2 s inside the script, and every key of
 * the batch was a miss). Slices of 16 cost the script no more than one MGET on 64 small values.
 * A large value met without the marker (another program wrote it under the prefix: MGET copied
 * it whole into the script) sets the marker, to outlive it by ARGV[3] ms (as a large write
 * does): later reads of it take GETRANGE's bounded copy, so a value too large to copy within the
 * command timeout fails one read, not every read, which would open the tier's breaker. A marker
 * write Redis refuses (maxmemory with noeviction) leaves the read as it was.
 * The reads of one tick go out as calls of it (tierReads.ts `get`; a lone read is cheaper as two
 * plain commands, see its `readAlone`). On 256 keys a pipeline of GET+PTTL pairs cost the client 2.4x the
 * time of a script.
 */
export const READ_SCRIPT = `
local last = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local n = #KEYS - 1
local out = {}
local total = 0
local large = false
local function answer(i, v)
  local j = 2 * i - 1
  if type(v) == 'table' then
    out[j] = false
    out[j + 1] = ${NOT_A_STRING}
  elseif type(v) ~= 'string' then
    out[j] = false
    out[j + 1] = -2
  elseif v == '' then
    out[j + 1] = redis.call('PTTL', KEYS[i + 1])
    if out[j + 1] == -2 then out[j] = false else out[j] = v end
  else
    total = total + #v
    out[j + 1] = redis.call('PTTL', KEYS[i + 1])
    if #v > last then
      out[j] = #v
      large = math.max(large or 0, out[j + 1])
    else
      out[j] = v
    end
  end
end
local i = 1
if redis.call('EXISTS', KEYS[1]) == 0 then
  local size = 4
  while i <= n and total < budget do
    local s = math.min(n, i + size - 1)
    local values = redis.call('MGET', unpack(KEYS, i + 1, s + 1))
    local absent = {}
    for k = i, s do
      if not values[k - i + 1] then absent[#absent + 1] = KEYS[k + 1] end
    end
    if #absent > 0 and redis.call('EXISTS', unpack(absent)) > 0 then
      for k = i, s do
        if not values[k - i + 1] and redis.call('EXISTS', KEYS[k + 1]) == 1 then values[k - i + 1] = {} end
      end
    end
    for k = i, s do answer(k, values[k - i + 1]) end
    i = s + 1
    size = math.max(1, math.min(32, math.floor((budget - total) * s / math.max(total, 1)) + 1))
  end
  if large then redis.pcall('SET', KEYS[1], '1', 'PX', math.max(large, 0) + tonumber(ARGV[3])) end
else
  while i <= n and total < budget do
    answer(i, redis.pcall('GETRANGE', KEYS[i + 1], 0, last))
    i = i + 1
  end
end
while i <= n do
  out[2 * i - 1] = {}
  out[2 * i] = -2
  i = i + 1
end
return out
`

/** The connection's client with the read script defined on it. */
interface ScriptedClient {
  readonly tiercacheRead: (
    numKeys: number,
    marker: string,
    ...keysThenLimit: Array<string>
  ) => Promise<Array<unknown>>
}

/**
 * The end of a value's bounded read: GETRANGE 0 rangeEnd answers at most `large.limit` bytes, and
 * a value that fills them is large (the script's MGET path answers the length of any value that
 * long).
 */
export const rangeEndOf = (large: LargeValues): string => String(large.limit - 1)

/**
 * One call of the read script on `keys` (without `prefix`), defined on `client` once: the
 * marker, then the keys; its reply is flat, a value and a PTTL per key.
 */
export const make = (
  client: Redis,
  large: LargeValues,
  prefix: string
): ((keys: ReadonlyArray<string>) => Promise<Array<unknown>>) => {
  if (!(READ_COMMAND in client)) client.defineCommand(READ_COMMAND, { lua: READ_SCRIPT })
  const scripted = client as unknown as ScriptedClient
  const rangeEnd = rangeEndOf(large)
  const budget = String(large.limit)
  const margin = String(MARKER_MARGIN_MS)
  return (keys) =>
    scripted.tiercacheRead(
      keys.length + 1,
      large.marker,
      ...keys.map((key) => prefix + key),
      rangeEnd,
      budget,
      margin
    )
}

/**
 * The replies of `keys` (pairs of value and PTTL, flat): `call` on them, then on the keys each
 * call left for later, one call after the other (each bounded alone).
 */
export const readAll = <E>(
  keys: ReadonlyArray<string>,
  call: (keys: ReadonlyArray<string>) => Effect.Effect<Array<unknown>, E>
): Effect.Effect<ReadonlyArray<unknown>, E> =>
  Effect.gen(function* () {
    const all = yield* call(keys)
    let left: Array<number> = []
    for (let i = 0; i < keys.length; i++) if (isLater(all[2 * i])) left.push(i)
    while (left.length > 0) {
      const asked = left
      const reply = yield* call(asked.map((i) => keys[i]!))
      left = []
      for (let k = 0; k < asked.length; k++) {
        const i = asked[k]!
        if (isLater(reply[2 * k])) left.push(i)
        else {
          all[2 * i] = reply[2 * k]
          all[2 * i + 1] = reply[2 * k + 1]
        }
      }
    }
    return all
  })
