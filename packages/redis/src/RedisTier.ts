/**
 * Redis as a cache tier (by default the L2). Each key is stored as `<prefix><key>` holding the
 * entry's wire envelope, with a Redis expiry (PX) at the entry's `staleUntil`; reads take the
 * remaining lifetime from Redis's own countdown (PTTL), read in the same transaction as the
 * value, so clock skew between machines cannot stretch or shorten an entry (a copy read from
 * Redis ends at most one round trip early, never late).
 *
 * Every command is bounded by the connection's command timeout, and every failure is a
 * {@link TierError}. Patterns are matched with SCAN (never KEYS), inside the prefix only: keys
 * outside the namespace (default `tiercache:`) are never read, written or deleted.
 *
 * Large values (see the connection's `largeValueBytes`, default 1 MiB) are written and read on
 * a connection of their own with a timeout scaled to their size: a small key read or written
 * meanwhile is neither held up nor failed by them. The read script and a lone read ask Redis
 * for at most `largeValueBytes` of a value; a larger one is then fetched on that connection.
 *
 * @since 0.1.0
 */
import { CacheError, Entry, Glob, Tier } from "@tiercache/core"
import { Duration, Effect, Layer, Option } from "effect"
import { type ChainableCommander, Command } from "ioredis"
import { READ_COMMAND } from "./internal/commands.js"
import * as LargeValues from "./internal/largeValues.js"
import { resolvePrefix } from "./internal/namespace.js"
import * as Recovery from "./internal/recovery.js"
import { sanitize } from "./internal/sanitize.js"
import { RedisConnection } from "./RedisConnection.js"

type TierError = CacheError.TierError
const { TierError } = CacheError

/**
 * Options of a Redis tier.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The tier's name in logs, metrics and errors (default `redis`). */
  readonly name?: string | undefined
  /**
   * The key prefix (namespace) of this tier (default: the connection's `keyPrefix`, itself
   * `tiercache:` by default). If you set it, give RedisInvalidationBus the same `namespace`.
   */
  readonly prefix?: string | undefined
  /** Allow `prefix: ""`: `clear` then deletes every key of the database. Default false. */
  readonly allowEmptyPrefix?: boolean | undefined
  /** Keys asked for per SCAN step when removing by pattern (default 500). */
  readonly scanCount?: number | undefined
}

const describe = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.includes("enableOfflineQueue")) return "not connected (reconnecting in the background)"
  if (message === "Command timed out") return "no answer within the command timeout"
  return message
}

const REMOVE_CHUNK = 1000

const BAD_VALUE: unique symbol = Symbol("BadValue")

/**
 * Reads the values and remaining lifetimes (PTTL) of KEYS in one atomic command, as a flat
 * array `[value1, pttl1, value2, pttl2, ...]`; a key holding no string (or nothing) answers
 * `false, -2` (a miss). Each value is read with GETRANGE 0 ARGV[1]: one that fills that range
 * (`largeValueBytes` or more) answers its partial length (a number) instead of itself and is
 * then fetched on the large-value connection, so a large value never holds up the small ones
 * of its batch (an MGET of a 20 MB value took Redis about a second inside a script). The reads
 * of one tick go out as calls of it (see `get`; a lone read is cheaper as two plain commands,
 * see `readAlone`). On 256 keys a pipeline of GET+PTTL pairs cost the client 2.4x the time of
 * a script.
 */
const READ_SCRIPT = `
local last = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local v = redis.pcall('GETRANGE', KEYS[i], 0, last)
  if type(v) ~= 'string' or v == '' then
    out[2 * i - 1] = false
    out[2 * i] = -2
  else
    if #v > last then out[2 * i - 1] = #v else out[2 * i - 1] = v end
    out[2 * i] = redis.call('PTTL', KEYS[i])
  end
end
return out
`

/** The connection's client with the read script defined on it. */
interface ScriptedClient {
  readonly tiercacheRead: (numKeys: number, ...keysThenLimit: Array<string>) => Promise<Array<unknown>>
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

interface Write {
  readonly key: string
  readonly value: string | undefined
  readonly px: number
}

/**
 * Builds a Redis tier on the connection in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Tier.Tier.Service, CacheError.CacheConfigError, RedisConnection> =>
  Effect.gen(function* () {
    const connection = yield* RedisConnection
    const clock = yield* Effect.clock
    const client = connection.client
    if (!(READ_COMMAND in client)) client.defineCommand(READ_COMMAND, { lua: READ_SCRIPT })
    const scripted = client as unknown as ScriptedClient
    const name = options.name ?? "redis"
    const prefix = yield* resolvePrefix(
      "prefix",
      options.prefix,
      options.allowEmptyPrefix,
      connection.keyPrefix
    )
    const large = LargeValues.make(connection)
    // GETRANGE 0 rangeEnd answers at most `large.limit` bytes: a value that fills them is large.
    const rangeEnd = String(large.limit - 1)
    const scanCount = Math.max(1, Math.floor(options.scanCount ?? 500))
    const timeout = connection.commandTimeout
    const timeoutReason = `no answer within ${Duration.format(timeout)}`

    const fail = (operation: string, cause: unknown) =>
      new TierError({ tier: name, operation, reason: describe(cause), cause: sanitize(cause) })

    /**
     * One command. ioredis bounds it by the command timeout itself (and fails it at once while
     * disconnected), so no timer of our own runs here: an Effect-level timeout forks a fiber
     * per call, which cost more than the round trip on the L2 hit path.
     */
    const run = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, TierError> =>
      Effect.tryPromise({ try: send, catch: (cause) => fail(operation, cause) })

    /** A transaction or pipeline, also bounded here as a whole. */
    const runBatch = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, TierError> =>
      run(operation, send).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new TierError({ tier: name, operation, reason: timeoutReason })
        })
      )

    /** Runs a transaction or pipeline; fails with the first command error. */
    const exec = (
      operation: string,
      batch: () => ChainableCommander
    ): Effect.Effect<Array<unknown>, TierError> =>
      Effect.flatMap(
        runBatch(operation, () => batch().exec()),
        (results) => {
          if (results === null) return Effect.fail(fail(operation, "transaction aborted"))
          const out: Array<unknown> = []
          for (const [error, value] of results) {
            if (error) return Effect.fail(fail(operation, error))
            out.push(value)
          }
          return Effect.succeed(out)
        }
      )

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
        Effect.logDebug("redis value is not a cache entry; treated as a miss").pipe(
          Effect.annotateLogs({ tier: name, key })
        ),
        Option.none()
      )
    }

    const readLarge = (key: string, now: number): Effect.Effect<Option.Option<Entry.Entry>, TierError> =>
      Effect.flatMap(
        Effect.mapError(large.read(prefix + key), (cause) => fail("get", cause)),
        ([raw, pttl]) =>
          typeof raw === "number" ? Effect.succeed(Option.none()) : decode(key, raw, pttl, now)
      )

    /** SET PX: on the large-value connection when the value is large. */
    const write = (
      operation: string,
      full: string,
      value: string,
      px: number
    ): Effect.Effect<void, TierError> =>
      large.isLarge(value)
        ? Effect.mapError(large.write(full, value, px), (cause) => fail(operation, cause))
        : Effect.asVoid(run(operation, () => client.set(full, value, "PX", px)))

    const encode = (operation: string, entry: Entry.Entry): Effect.Effect<string, TierError> =>
      Effect.try({ try: () => Entry.serialize(entry), catch: (cause) => fail(operation, cause) })

    /** Milliseconds until the entry is gone; not positive means it must not be stored. */
    const pxOf = (entry: Entry.Entry, now: number): number => Math.ceil(entry.staleUntil - now)

    const removeMatching = (operation: string, glob: string): Effect.Effect<number, TierError> =>
      Effect.gen(function* () {
        const pattern = Glob.escape(prefix) + glob
        let cursor = "0"
        let removed = 0
        do {
          const [next, keys] = yield* run(operation, () =>
            client.scanBuffer(cursor, "MATCH", pattern, "COUNT", scanCount)
          )
          if (keys.length > 0) removed += yield* run(operation, () => client.unlink(...keys))
          cursor = next.toString()
        } while (cursor !== "0")
        return removed
      })

    /**
     * The reads made in one tick, sent when the tick ends (or as soon as MAX_BATCH wait): with
     * many callers at once this costs Redis and the client one command per MAX_BATCH reads
     * instead of two per read; a lone read is one write of GET and PTTL. A caller that is
     * interrupted meanwhile simply ignores its answer.
     */
    let pending: Array<PendingRead> = []
    const flush = (): void => {
      if (pending.length === 0) return
      const batch = pending
      pending = []
      const answer = (reply: unknown) => {
        if (!Array.isArray(reply) || reply.length !== 2 * batch.length) {
          return failAll(`unexpected answer to a read: ${String(reply).slice(0, 80)}`)
        }
        for (let i = 0; i < batch.length; i++) {
          const r = batch[i]!
          r.resume(decode(r.key, reply[2 * i], reply[2 * i + 1], r.now))
        }
      }
      const failAll = (cause: unknown) => {
        const error = fail("get", cause)
        for (const r of batch) r.resume(Effect.fail(error))
      }
      if (batch.length === 1) readAlone(prefix + batch[0]!.key).then(answer, failAll)
      else
        scripted
          .tiercacheRead(batch.length, ...batch.map((r) => prefix + r.key), rangeEnd)
          .then(answer, failAll)
    }

    /**
     * A lone read: GETRANGE (at most `largeValueBytes` of the value: a value that fills them is
     * large, and answered as its length, then fetched on the large-value connection) and PTTL
     * as two plain commands in one write. Measured on one key, the
     * read script cost Redis 14 us against 2 us for the pair, and a pipeline object cost the
     * client more than both (median round trips: pair 1.0x a plain GET, script 1.2x, pipeline
     * 1.2x). Redis runs the commands of one client's read back to back, so the pair answers
     * like the script; were a write to land between them, the value would come with the new
     * lifetime: a value Redis just held, which that write's invalidation then removes.
     */
    const readAlone = (full: string): Promise<[unknown, unknown]> => {
      const get = new Command("getrange", [full, "0", rangeEnd])
      const pttl = new Command("pttl", [full])
      const corked = client.status === "ready"
      if (corked) client.stream.cork()
      try {
        client.sendCommand(get)
        client.sendCommand(pttl)
      } finally {
        if (corked) client.stream.uncork()
      }
      return Promise.all([
        (get.promise as Promise<Buffer>).then(
          // GETRANGE answers "" for a missing key; entries are never empty.
          (bytes) =>
            bytes.length === 0 ? null : bytes.length >= large.limit ? bytes.length : bytes.toString("utf8"),
          // WRONGTYPE: something that is not a string lives under the key: not an entry.
          (error: unknown) =>
            error instanceof Error && error.message.startsWith("WRONGTYPE") ? null : Promise.reject(error)
        ),
        pttl.promise as Promise<unknown>
      ])
    }

    const tier: Tier.Tier.Service = {
      name,
      // TieredCache's `tiercache.tier.*` spans carry it as `db.system.name`; RedisTier opens no
      // spans of its own (one span per tier call, not two nested ones).
      system: "redis",
      // ioredis fails every command past the connection's command timeout (and at once while
      // disconnected); batches are bounded here as well.
      callTimeout: timeout,
      // Reads carry no span: on this path a span costs about as much as the round trip itself.
      get: (key) =>
        Effect.async<Option.Option<Entry.Entry>, TierError>((resume) => {
          // The clock is read before asking: Redis counts PTTL down from a later moment, so the
          // rebased lifetime may end a round trip early, never late.
          pending.push({ key, now: clock.unsafeCurrentTimeMillis(), resume })
          if (pending.length === 1) process.nextTick(flush)
          else if (pending.length >= MAX_BATCH) flush()
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
            run("getMany", () =>
              scripted.tiercacheRead(chunk.length, ...chunk.map((key) => prefix + key), rangeEnd)
            )
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
        }),

      // No span on a write either: per write it cost more than the rest of this function.
      set: (key, entry) =>
        Effect.suspend(() => {
          const full = prefix + key
          const px = pxOf(entry, clock.unsafeCurrentTimeMillis())
          if (!(px > 0)) return Effect.asVoid(run("set", () => client.unlink(full)))
          let value: string
          try {
            value = Entry.serialize(entry)
          } catch (cause) {
            return Effect.fail(fail("set", cause))
          }
          return write("set", full, value, px)
        }),

      setMany: (entries) =>
        Effect.gen(function* () {
          if (entries.length === 0) return
          const now = clock.unsafeCurrentTimeMillis()
          const writes = yield* Effect.forEach(entries, ([key, entry]): Effect.Effect<Write, TierError> => {
            const px = pxOf(entry, now)
            return px > 0
              ? Effect.map(encode("setMany", entry), (value) => ({ key: prefix + key, value, px }))
              : Effect.succeed({ key: prefix + key, value: undefined, px })
          })
          const small = writes.filter((w) => w.value === undefined || !large.isLarge(w.value))
          const big = writes.filter((w) => w.value !== undefined && large.isLarge(w.value))
          yield* Effect.all(
            [
              small.length === 0
                ? Effect.void
                : exec("setMany", () => {
                    const pipeline = client.pipeline()
                    for (const w of small) {
                      if (w.value === undefined) pipeline.unlink(w.key)
                      else pipeline.set(w.key, w.value, "PX", w.px)
                    }
                    return pipeline
                  }),
              Effect.forEach(big, (w) => write("setMany", w.key, w.value!, w.px), { discard: true })
            ],
            { concurrency: "unbounded", discard: true }
          )
        }),

      remove: (keys) =>
        Effect.gen(function* () {
          if (keys.length === 0) return
          const full = keys.map((key) => prefix + key)
          if (full.length <= REMOVE_CHUNK) {
            yield* run("remove", () => client.unlink(...full))
            return
          }
          yield* exec("remove", () => {
            const pipeline = client.pipeline()
            for (let i = 0; i < full.length; i += REMOVE_CHUNK)
              pipeline.unlink(...full.slice(i, i + REMOVE_CHUNK))
            return pipeline
          })
        }),

      removeMatching: (glob) => removeMatching("removeMatching", glob),

      clear: removeMatching("clear", "*").pipe(Effect.asVoid),

      // Auto-recovery: a createdAt-guarded write (one Lua script), and word of a reconnection.
      writeIfNewer: Recovery.writeIfNewer(
        client,
        large,
        prefix,
        () => clock.unsafeCurrentTimeMillis(),
        (cause) => fail("writeIfNewer", cause)
      ),
      ready: Recovery.ready(client),

      health: run("health", () => client.ping()).pipe(
        Effect.timed,
        Effect.map(([elapsed]) => ({
          name,
          healthy: true,
          detail: `PING ${Duration.toMillis(elapsed).toFixed(2)} ms`
        })),
        Effect.catchAll((error) => Effect.succeed({ name, healthy: false, detail: error.reason }))
      )
    }
    return tier
  })

/**
 * A Redis tier as the cache's L2.
 *
 * @example
 * ```ts
 * import { MemoryTier, TieredCache } from "@tiercache/core"
 * import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
 * import { Layer } from "effect"
 *
 * // Keys are written as `myapp:<key>`; the bus keeps other instances' L1 coherent.
 * const CacheLive = TieredCache.layer().pipe(
 *   Layer.provide(MemoryTier.layer({ maxEntries: 50_000 })),
 *   Layer.provide(Layer.merge(RedisTier.layer({ prefix: "myapp:" }), RedisInvalidationBus.layer())),
 *   Layer.provide(RedisConnection.layer({ host: "127.0.0.1", port: 6379 }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<Tier.L2, CacheError.CacheConfigError, RedisConnection> => Layer.effect(Tier.L2, make(options))
