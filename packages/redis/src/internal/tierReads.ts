/**
 * RedisTier's reads (`get`, `getMany`): values and remaining lifetimes (PTTL) read together,
 * the reads of one tick batched into calls of one Lua script (a lone read is two plain
 * commands), replies decoded into entries, and large values fetched on the large-value
 * connection.
 */
import { type CacheError, Entry, type Tier } from "@tiercache/core"
import { type Clock, Effect, Option } from "effect"
import { Command, type Redis } from "ioredis"
import { READ_COMMAND } from "./commands.js"
import * as LargeValues from "./largeValues.js"
import { sendInOneWrite } from "./oneWrite.js"
import type { Runner } from "./tierRunner.js"

type TierError = CacheError.TierError

const BAD_VALUE: unique symbol = Symbol("BadValue")

/** Whether a reply of the read script leaves the key to a next call (its byte budget was spent). */
const isLater = (raw: unknown): boolean => Array.isArray(raw)

/**
 * Reads the values and remaining lifetimes (PTTL) of KEYS[2..] in one atomic command, as a flat
 * array `[value1, pttl1, value2, pttl2, ...]`; a key holding no string (or nothing) answers
 * `false, -2` (a miss). KEYS[1] is the namespace's large-value marker (see largeValues.ts).
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
 * The reads of one tick go out as calls of it (see `get`; a lone read is cheaper as two plain
 * commands, see `readAlone`). On 256 keys a pipeline of GET+PTTL pairs cost the client 2.4x the
 * time of a script.
 */
const READ_SCRIPT = `
local last = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local n = #KEYS - 1
local out = {}
local total = 0
local large = false
local function answer(i, v)
  local j = 2 * i - 1
  if type(v) ~= 'string' or v == '' then
    out[j] = false
    out[j + 1] = -2
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

/** A read waiting for the next batch. */
interface PendingRead {
  readonly key: string
  readonly now: number
  readonly resume: (effect: Effect.Effect<Option.Option<Entry.Entry>, CacheError.TierError>) => void
}

/**
 * Most reads sent in one call of the read script. A tick's reads go out in calls of this many
 * as they come, so Redis works on the first call while the client is still resuming callers and
 * collecting the next: with 256 concurrent callers, calls of 64 reads took 0.85x-0.95x the time
 * of calls of 512 (bench/l2.ts).
 */
const MAX_BATCH = 64

/** Keys per script call of `getMany` (one caller's keys, answered together). */
const MANY_CHUNK = 512

/** What the reads of one tier are built on. */
export interface Deps {
  /** The command connection's client. */
  readonly client: Redis
  readonly large: LargeValues.LargeValues
  /** The tier's key prefix. */
  readonly prefix: string
  /** The tier's name, in logs. */
  readonly name: string
  readonly clock: Clock.Clock
  readonly runner: Runner
}

/** Builds the reads of a tier (and defines the read script on its client). */
export const make = ({
  client,
  large,
  prefix,
  name,
  clock,
  runner
}: Deps): Pick<Tier.Tier.Service, "get" | "getMany"> => {
  const { fail, run } = runner
  if (!(READ_COMMAND in client)) client.defineCommand(READ_COMMAND, { lua: READ_SCRIPT })
  const scripted = client as unknown as ScriptedClient
  // GETRANGE 0 rangeEnd answers at most `large.limit` bytes: a value that fills them is large
  // (the script's MGET path answers the length of any value that long).
  const rangeEnd = String(large.limit - 1)
  const budget = String(large.limit)
  const margin = String(LargeValues.MARKER_MARGIN_MS)
  /** One call of the read script on `keys` (without the prefix): the marker, then the keys. */
  const readScript = (keys: ReadonlyArray<string>): Promise<Array<unknown>> =>
    scripted.tiercacheRead(
      keys.length + 1,
      large.marker,
      ...keys.map((key) => prefix + key),
      rangeEnd,
      budget,
      margin
    )

  /**
   * The replies of `keys` (pairs of value and PTTL, flat): calls of the read script one after
   * the other, each on the keys the calls before left for later, each bounded by the command
   * timeout alone.
   */
  const readAll = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<unknown>, TierError> =>
    Effect.gen(function* () {
      const first = yield* run("getMany", () => readScript(keys))
      if (!keys.some((_, i) => isLater(first[2 * i]))) return first
      const all = [...first]
      let left = keys.flatMap((_, i) => (isLater(first[2 * i]) ? [i] : []))
      while (left.length > 0) {
        const asked = left
        const reply = yield* run("getMany", () => readScript(asked.map((i) => keys[i]!)))
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

  /** A reply decoded: the entry, a miss, or BAD_VALUE for something that is not an entry. */
  const decodeReply = (
    raw: unknown,
    pttl: unknown,
    now: number
  ): Option.Option<Entry.Entry> | typeof BAD_VALUE => {
    if (raw === null || raw === undefined || raw === false) return Option.none()
    const entry = typeof raw === "string" ? Entry.deserialize(raw) : undefined
    if (entry === undefined) return BAD_VALUE
    const remaining = typeof pttl === "number" ? pttl : Number(pttl)
    // -2: gone (or not a string); -1: written without an expiry by someone else: the entry's
    // own lifetime stands.
    if (remaining === -2) return Option.none()
    const rebased = remaining >= 0 ? Entry.rebase(entry, now, remaining) : entry
    return Entry.isGone(rebased, now) ? Option.none() : Option.some(rebased)
  }

  const decode = (
    key: string,
    raw: unknown,
    pttl: unknown,
    now: number
  ): Effect.Effect<Option.Option<Entry.Entry>, TierError> => {
    // A number in place of the value: a large value, fetched on the large-value connection.
    if (typeof raw === "number") return readLarge(key, now)
    const decoded = decodeReply(raw, pttl, now)
    if (decoded !== BAD_VALUE) return Effect.succeed(decoded)
    return Effect.as(
      // Without the key: a log line becomes an event of the cache's tier span, which keeps keys
      // out unless `keysInSpans` (a tier cannot tell).
      Effect.logDebug("redis value is not a cache entry; treated as a miss").pipe(
        Effect.annotateLogs({ tier: name })
      ),
      Option.none()
    )
  }

  const readLarge = (key: string, now: number): Effect.Effect<Option.Option<Entry.Entry>, TierError> =>
    Effect.flatMap(
      Effect.mapError(large.read(prefix + key), (cause) => fail("get", cause)),
      ([raw, pttl]) => (typeof raw === "number" ? Effect.succeed(Option.none()) : decode(key, raw, pttl, now))
    )

  /**
   * The reads made in one tick, sent when the tick ends (or as soon as MAX_BATCH wait): with
   * many callers at once this costs Redis and the client one command per MAX_BATCH reads
   * instead of two per read; a lone read is one write of GETRANGE and PTTL. A caller that is
   * interrupted meanwhile simply ignores its answer.
   * While earlier reads are still unanswered the connection is busy: the next reads wait for
   * the end of the event-loop turn instead (setImmediate, as ioredis's auto-pipeline does), so
   * that they go out in one socket write with the turn's other commands. Measured with 64
   * callers of cold misses, a write system call per lone read cost a quarter of the throughput;
   * waiting for the turn's end when nothing is unanswered would cost a lone caller about a
   * fifth of its latency.
   */
  let pending: Array<PendingRead> = []
  let unanswered = 0
  const flush = (): void => {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    const busy = unanswered > 0
    unanswered += batch.length
    const failEach = (cause: unknown) => {
      const error = fail("get", cause)
      for (const r of batch) r.resume(Effect.fail(error))
    }
    const answer = (reply: unknown) => {
      unanswered -= batch.length
      if (!Array.isArray(reply) || reply.length !== 2 * batch.length) {
        return failEach(`unexpected answer to a read: ${String(reply).slice(0, 80)}`)
      }
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i]!
        // Left for a next call (the call's byte budget was spent): read again with the next batch.
        if (isLater(reply[2 * i])) enqueue(r)
        else r.resume(decode(r.key, reply[2 * i], reply[2 * i + 1], r.now))
      }
    }
    const failAll = (cause: unknown) => {
      unanswered -= batch.length
      failEach(cause)
    }
    if (batch.length === 1) readAlone(prefix + batch[0]!.key, busy, answer, failAll)
    else readScript(batch.map((r) => r.key)).then(answer, failAll)
  }

  /**
   * A lone read: GETRANGE (at most `largeValueBytes` of the value, as text: one that may fill
   * them is fetched whole on the large-value connection, see `readText`) and PTTL
   * as two plain commands in one write (oneWrite.ts). Measured on one key, the
   * read script cost Redis 14 us against 2 us for the pair, and a pipeline object cost the
   * client more than both (median round trips: pair 1.0x a plain GET, script 1.2x, pipeline
   * 1.2x). Redis runs the commands of one client's read back to back, so the pair answers
   * like the script; were a write to land between them, the value would come with the new
   * lifetime: a value Redis just held, which that write's invalidation then removes.
   */
  /**
   * A read joins the next batch: sent at the end of this tick, or of the event-loop turn while
   * earlier reads are unanswered (see `flush`), or at once when MAX_BATCH wait.
   */
  const enqueue = (read: PendingRead): void => {
    pending.push(read)
    if (pending.length === 1) {
      if (unanswered === 0) process.nextTick(flush)
      else setImmediate(flush)
    } else if (pending.length >= MAX_BATCH) flush()
  }

  const readAlone = (
    full: string,
    busy: boolean,
    done: (reply: readonly [unknown, unknown]) => void,
    failed: (cause: unknown) => void
  ): void => {
    let value: Promise<unknown>
    let pttl: Promise<unknown>
    if (busy) {
      // Auto-pipelined: in the turn's one write.
      value = client.getrange(full, 0, large.limit - 1)
      pttl = client.pttl(full)
    } else {
      const get = new Command("getrange", [full, "0", rangeEnd], { replyEncoding: "utf8" })
      const ttl = new Command("pttl", [full])
      if (!sendInOneWrite(client, [get, ttl])) {
        // Not ready: the driver fails both at once.
        client.sendCommand(get)
        client.sendCommand(ttl)
      }
      value = get.promise
      pttl = ttl.promise
    }
    // GETRANGE's reply comes before PTTL's, so its callback runs first: no Promise.all.
    let raw: unknown
    let error: { readonly cause: unknown } | undefined
    value.then(
      (text) => {
        raw = readText(text)
      },
      (cause: unknown) => {
        // WRONGTYPE: something that is not a string lives under the key: not an entry.
        if (cause instanceof Error && cause.message.startsWith("WRONGTYPE")) raw = null
        else error = { cause }
      }
    )
    pttl.then((remaining) => (error === undefined ? done([raw, remaining]) : failed(error.cause)), failed)
  }

  /**
   * A lone read's GETRANGE reply, decoded: null for a missing key ("": entries are never
   * empty), the text of a value shorter than `largeValueBytes`, or a number for a value that
   * may fill them (then read whole on the large-value connection). The reply is at most
   * `largeValueBytes` bytes, and every UTF-16 unit of its text takes at most 3 of them, so a text
   * shorter than a third of them (less the partial character a cut can leave) was not cut.
   */
  const readText = (text: unknown): unknown => {
    if (typeof text !== "string" || text.length === 0) return null
    return text.length * 3 < large.limit - 3 ? text : text.length
  }

  return {
    // Reads carry no span: on this path a span costs about as much as the round trip itself.
    get: (key) =>
      Effect.async<Option.Option<Entry.Entry>, TierError>((resume) => {
        // The clock is read before asking: Redis counts PTTL down from a later moment, so the
        // rebased lifetime may end a round trip early, never late.
        enqueue({ key, now: clock.unsafeCurrentTimeMillis(), resume })
      }),

    getMany: (keys) =>
      Effect.gen(function* () {
        if (keys.length === 0) return []
        const now = clock.unsafeCurrentTimeMillis()
        // In chunks: one script call per MANY_CHUNK keys keeps each command short for Redis
        // (it runs one at a time) and within JavaScript's argument limits.
        const chunks: Array<ReadonlyArray<string>> = []
        for (let i = 0; i < keys.length; i += MANY_CHUNK) chunks.push(keys.slice(i, i + MANY_CHUNK))
        const replies = yield* Effect.forEach(chunks, readAll)
        const reply = replies.flat()
        // Decoded synchronously; only a large value or a foreign one needs an Effect of its own.
        const entries: Array<Option.Option<Entry.Entry>> = []
        for (let i = 0; i < keys.length; i++) {
          const raw = reply[2 * i]
          const decoded = typeof raw === "number" ? BAD_VALUE : decodeReply(raw, reply[2 * i + 1], now)
          if (decoded === BAD_VALUE) {
            return yield* Effect.forEach(keys, (key, j) => decode(key, reply[2 * j], reply[2 * j + 1], now))
          }
          entries.push(decoded)
        }
        return entries
      })
  }
}
