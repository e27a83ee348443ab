/**
 * RedisTier's reads (`get`, `getMany`): values and remaining lifetimes (PTTL) read together,
 * the reads of one tick batched into calls of one Lua script (a lone read is two plain
 * commands), replies decoded into entries, and large values fetched on the large-value
 * connection.
 */
import { type CacheError, CacheMetrics, Entry, type Tier } from "@tiercache/core"
import { type Clock, Effect, Metric, Option } from "effect"
import { Command, type Redis } from "ioredis"
import type { LargeValues } from "./largeValues.js"
import { isWrongType, NOT_A_STRING } from "./notAString.js"
import { sendInOneWrite } from "./oneWrite.js"
import * as ReadScript from "./readScript.js"
import type { Runner } from "./tierRunner.js"

type TierError = CacheError.TierError

const BAD_VALUE: unique symbol = Symbol("BadValue")

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
  readonly large: LargeValues
  /** The tier's key prefix. */
  readonly prefix: string
  /** The tier's name, in logs and metrics. */
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
  const readScript = ReadScript.make(client, large, prefix)
  const rangeEnd = ReadScript.rangeEndOf(large)
  const foreign = Metric.increment(Metric.tagged(CacheMetrics.foreignValues, "tier", name))

  /**
   * A reply decoded: the entry, a miss, or BAD_VALUE for something that is not an entry (a
   * string that does not deserialize, or no string at all: NOT_A_STRING).
   */
  const decodeReply = (
    raw: unknown,
    pttl: unknown,
    now: number
  ): Option.Option<Entry.Entry> | typeof BAD_VALUE => {
    if (raw === null || raw === undefined || raw === false)
      return pttl === NOT_A_STRING ? BAD_VALUE : Option.none()
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
      // Counted once per read that meets it (CacheMetrics.foreignValues). Without the key: a log
      // line becomes an event of the cache's tier span, which keeps keys out unless
      // `keysInSpans` (a tier cannot tell).
      Effect.zipRight(
        foreign,
        Effect.logDebug("redis value is not a cache entry; treated as a miss").pipe(
          Effect.annotateLogs({ tier: name })
        )
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
        if (ReadScript.isLater(reply[2 * i])) enqueue(r)
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
    let notAString = false
    value.then(
      (text) => {
        raw = readText(text)
      },
      (cause: unknown) => {
        // WRONGTYPE: something that is not a string lives under the key: not an entry.
        if (isWrongType(cause)) notAString = true
        else error = { cause }
      }
    )
    pttl.then(
      (remaining) =>
        error !== undefined
          ? failed(error.cause)
          : done(
              notAString
                ? [false, NOT_A_STRING]
                : // GETRANGE answers "" for a missing key and for an empty string; PTTL tells them apart.
                  [raw === "" && remaining === -2 ? null : raw, remaining]
            ),
      failed
    )
  }

  /**
   * A lone read's GETRANGE reply, decoded: the text of a value shorter than `largeValueBytes`
   * ("" for a missing key or an empty string, told apart by the PTTL read beside it), or a
   * number for a value that may fill them (then read whole on the large-value connection). The reply is at most
   * `largeValueBytes` bytes, and every UTF-16 unit of its text takes at most 3 of them, so a text
   * shorter than a third of them (less the partial character a cut can leave) was not cut.
   */
  const readText = (text: unknown): unknown => {
    if (typeof text !== "string") return null
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
        const replies = yield* Effect.forEach(chunks, (chunk) =>
          ReadScript.readAll(chunk, (asked) => run("getMany", () => readScript(asked)))
        )
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
