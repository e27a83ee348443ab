/**
 * In-memory event streams: the `CacheStreams` service of @tiercache/core without Redis, on the
 * Effect Clock (entry ids are Clock milliseconds; blocking reads, consumers' `blockMs` and
 * `claimIdleMs` wait on it, so `TestClock.adjust` drives them). It behaves as RedisStreams does:
 * entries in order with ids `<ms>-<seq>`, `readLatest` newest first, `read` after an id (`"$"`:
 * only entries published after the call; an id given to `read`, `createGroup` or `ack` is read
 * as Redis reads it: each number up to 2^64-1, with spaces, `+` or zeros in front), consumer
 * groups whose consumers get their own pending entries first, then new ones (at least once),
 * `claimIdleMs` taking over the entries other consumers left unacknowledged that long (each to
 * one consumer, never its own again; a pass looks at `count` pending entries a pull, as
 * RedisStreams's pages, until it has seen them all), and a pending entry trimmed away by
 * `maxLen` delivered to nobody. `maxLen` trims exactly (Redis's `MAXLEN ~` may keep a few
 * more). Bad arguments and a consumer of a group that does not exist are `StreamError`s, as
 * with Redis.
 *
 * @since 0.1.0
 */
import { CacheError, CacheStreams } from "@tiercache/core"
import { Clock, Deferred, Effect, Layer, Stream } from "effect"
import { given } from "./internal/options.js"
import { format, type Id, nextId, parseId, ZERO } from "./internal/streamIds.js"

type StreamEntry = CacheStreams.StreamEntry
type StreamError = CacheError.StreamError
const { StreamError } = CacheError

interface Pending {
  readonly at: Id
  consumer: string
  /** Clock ms of its last delivery. */
  deliveredAt: number
}

interface Group {
  lastDelivered: Id
  /** Pending entries by id, in id order of delivery. */
  readonly pending: Map<string, Pending>
}

interface StreamState {
  readonly entries: Array<StreamEntry & { readonly at: Id }>
  last: Id
  readonly groups: Map<string, Group>
}

const byId = (a: Pending, b: Pending): number => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)

/** No lone surrogate (Node 20.19 has `isWellFormed`; ES2022's types do not name it). */
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed: () => boolean }).isWellFormed()
const isName = (value: unknown): value is string =>
  typeof value === "string" && value.length > 0 && isWellFormed(value)
const isPositiveInteger = (n: unknown): n is number =>
  typeof n === "number" && Number.isSafeInteger(n) && n > 0

/**
 * Builds in-memory streams (each call its own, empty).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<CacheStreams.CacheStreams.Service> = Effect.gen(function* () {
  const streams = new Map<string, StreamState>()
  /** Completed (and replaced) on every publish: what blocked reads wait for. */
  let changed = yield* Deferred.make<void>()
  const notify = Effect.suspend(() => {
    const done = changed
    return Effect.flatMap(Deferred.make<void>(), (next) => {
      changed = next
      return Deferred.succeed(done, undefined)
    })
  })

  const fail = (operation: string, stream: string, reason: string) =>
    Effect.fail(new StreamError({ operation, stream, reason }))
  const named = (operation: string, stream: unknown, what: string, value: unknown) =>
    isName(value)
      ? Effect.void
      : fail(
          operation,
          typeof stream === "string" ? stream : `(${typeof stream})`,
          `${what} must be a non-empty string of well-formed UTF-16`
        )
  const checkStream = (operation: string, stream: unknown) =>
    named(operation, stream, "the stream name", stream)

  const stateOf = (stream: string): StreamState => {
    let state = streams.get(stream)
    if (state === undefined) {
      state = { entries: [], last: ZERO, groups: new Map() }
      streams.set(stream, state)
    }
    return state
  }
  const after = (state: StreamState | undefined, id: Id, count: number) =>
    (state?.entries ?? []).filter((e) => e.at > id).slice(0, count)
  /** A copy of a stored entry, as Redis answers one: a reader changing it changes nothing here. */
  const plain = ({ id, fields }: StreamEntry): StreamEntry => ({
    id,
    fields: fields.map(([name, value]) => [name, value] as const)
  })

  /**
   * Waits (on the Clock) until `signal` (the `changed` of before the caller looked) is completed by
   * a publish, or `deadline` passes.
   */
  const waitUntil = (signal: Deferred.Deferred<void>, deadline: number) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      deadline <= now ? Effect.void : Effect.ignore(Effect.timeout(Deferred.await(signal), deadline - now))
    )

  const pairsOf = (stream: string, fields: unknown): Effect.Effect<Array<[string, string]>, StreamError> => {
    const bad = (why: string) => fail("publish", stream, why)
    try {
      if (typeof fields !== "object" || fields === null) return bad("fields must be pairs or a record")
      const given: ReadonlyArray<unknown> = Array.isArray(fields) ? fields : Object.entries(fields)
      const pairs: Array<[string, string]> = []
      for (const pair of given) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string")
          return bad("each field must be a [name, value] pair with a string name")
        const [name, value] = pair as [string, unknown]
        if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value)))
          return bad(`the value of field ${JSON.stringify(name)} must be a string or a finite number`)
        const text = String(value)
        if (!isWellFormed(name) || !isWellFormed(text))
          return bad(`field ${JSON.stringify(name)} must be well-formed UTF-16 (no lone surrogate)`)
        pairs.push([name, text])
      }
      if (pairs.length === 0) return bad("an entry needs at least one field")
      return Effect.succeed(pairs)
    } catch (cause) {
      return bad(`fields could not be read: ${cause instanceof Error ? cause.message : typeof cause}`)
    }
  }

  const publish = (stream: string, fields: CacheStreams.Fields, maxLen?: number) =>
    Effect.gen(function* () {
      yield* checkStream("publish", stream)
      const pairs = yield* pairsOf(stream, fields)
      if (maxLen !== undefined && !(Number.isSafeInteger(maxLen) && maxLen >= 0))
        return yield* fail("publish", stream, "maxLen must be a non-negative integer")
      const now = yield* Clock.currentTimeMillis
      const state = stateOf(stream)
      const at = nextId(now, state.last)
      state.last = at
      const id = format(at)
      state.entries.push({ id, fields: pairs, at })
      if (maxLen !== undefined && state.entries.length > maxLen)
        state.entries.splice(0, state.entries.length - maxLen)
      yield* notify
      return id
    })

  const readLatest = (stream: string, count: number) =>
    Effect.gen(function* () {
      yield* checkStream("readLatest", stream)
      if (!isPositiveInteger(count))
        return yield* fail("readLatest", stream, "count must be a positive integer")
      return (streams.get(stream)?.entries ?? []).slice(-count).reverse().map(plain)
    })

  const read = (stream: string, lastId: string, count: number, blockMs?: number) =>
    Effect.gen(function* () {
      yield* checkStream("read", stream)
      yield* named("read", stream, "lastId", lastId)
      if (!isPositiveInteger(count)) return yield* fail("read", stream, "count must be a positive integer")
      if (blockMs !== undefined && !(Number.isFinite(blockMs) && blockMs >= 0))
        return yield* fail("read", stream, "blockMs must be a non-negative number")
      const from = lastId === "$" ? (streams.get(stream)?.last ?? ZERO) : parseId(lastId)
      if (from === undefined) return yield* fail("read", stream, "Invalid stream ID specified")
      const deadline = (yield* Clock.currentTimeMillis) + Math.floor(blockMs ?? 0)
      while (true) {
        const signal = changed
        const found = after(streams.get(stream), from, count)
        if (found.length > 0 || (yield* Clock.currentTimeMillis) >= deadline) return found.map(plain)
        yield* waitUntil(signal, deadline)
      }
    })

  const createGroup = (stream: string, group: string, startId = "$") =>
    Effect.gen(function* () {
      yield* checkStream("createGroup", stream)
      yield* named("createGroup", stream, "group", group)
      yield* named("createGroup", stream, "startId", startId)
      const state = stateOf(stream)
      const start = startId === "$" ? state.last : parseId(startId)
      if (start === undefined) return yield* fail("createGroup", stream, "Invalid stream ID specified")
      if (!state.groups.has(group)) state.groups.set(group, { lastDelivered: start, pending: new Map() })
    })

  const ack = (stream: string, group: string, ids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      yield* checkStream("ack", stream)
      yield* named("ack", stream, "group", group)
      let given: Array<string>
      try {
        if (!(Array.isArray(ids) && ids.every(isName)))
          return yield* fail("ack", stream, "ids must be an array of ids")
        given = [...ids]
      } catch {
        return yield* fail("ack", stream, "ids could not be read")
      }
      // As XACK: one id that is not an id refuses the whole call; "<ms>" is "<ms>-0".
      const parsed = given.map(parseId)
      if (parsed.some((id) => id === undefined))
        return yield* fail("ack", stream, "Invalid stream ID specified as stream command argument")
      const pending = streams.get(stream)?.groups.get(group)?.pending
      let acked = 0
      for (const id of new Set(parsed.map((id) => format(id!)))) if (pending?.delete(id)) acked++
      return acked
    })

  const consume = (
    stream: string,
    group: string,
    consumer: string,
    options: CacheStreams.ConsumeOptions = {}
  ): Stream.Stream<StreamEntry, StreamError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        yield* checkStream("consume", stream)
        yield* named("consume", stream, "group", group)
        yield* named("consume", stream, "consumer", consumer)
        if (typeof options !== "object" || options === null)
          return yield* fail("consume", stream, "options must be an object")
        // Read once here: from plain JavaScript, a Proxy or a throwing getter is a StreamError.
        let read: CacheStreams.ConsumeOptions
        try {
          read = { count: options.count, blockMs: options.blockMs, claimIdleMs: options.claimIdleMs }
        } catch {
          return yield* fail("consume", stream, "options could not be read")
        }
        const count = given(read.count, 10)
        const blockMs = given(read.blockMs, 1000)
        const claimIdleMs = read.claimIdleMs
        if (!isPositiveInteger(count))
          return yield* fail("consume", stream, "count must be a positive integer")
        if (!isPositiveInteger(blockMs))
          return yield* fail("consume", stream, "blockMs must be a positive integer")
        if (claimIdleMs !== undefined && !isPositiveInteger(claimIdleMs))
          return yield* fail("consume", stream, "claimIdleMs must be a positive integer")
        const groupOf = Effect.suspend(() => {
          const found = streams.get(stream)?.groups.get(group)
          return found === undefined
            ? fail("consume", stream, `NOGROUP no consumer group ${JSON.stringify(group)} for this stream`)
            : Effect.succeed(found)
        })
        /** The entry of `id` now, or undefined once it was trimmed away. */
        const entryOf = (id: string) => streams.get(stream)?.entries.find((e) => e.id === id)
        // First this consumer's own pending entries (from an earlier run), then new ones.
        let cursor: Id | undefined = ZERO
        let lastPass = Number.NEGATIVE_INFINITY
        /**
         * With `claimIdleMs`, where the next page of the claim pass under way starts (after
         * this id); undefined: no pass under way. As RedisStreams's (its streamClaim.ts): a
         * pass pages through the group's pending entries idle `claimIdleMs`, in id order,
         * `count` a page (XPENDING ... IDLE), this consumer's own counted but skipped, and
         * claims the others (XCLAIM); one page a pull, whatever it claimed (maybe nothing),
         * until a page comes back short.
         */
        let pass: Id | undefined
        const claimPage = (g: Group, now: number): Array<StreamEntry> => {
          const start = pass!
          const rows = [...g.pending.entries()]
            .filter(([, p]) => now - p.deliveredAt >= claimIdleMs! && p.at > start)
            .sort(([, a], [, b]) => byId(a, b))
            .slice(0, count)
          pass = rows.length < count ? undefined : rows[rows.length - 1]![1].at
          const out: Array<StreamEntry> = []
          for (const [id, p] of rows) {
            if (p.consumer === consumer) continue
            const entry = entryOf(id)
            // Trimmed away since: it leaves the group (as XCLAIM drops it), delivered to nobody.
            if (entry === undefined) g.pending.delete(id)
            else {
              g.pending.set(id, { at: p.at, consumer, deliveredAt: now })
              out.push(plain(entry))
            }
          }
          return out
        }
        const next: Effect.Effect<ReadonlyArray<StreamEntry>, StreamError> = Effect.gen(function* () {
          const signal = changed
          const g = yield* groupOf
          const now = yield* Clock.currentTimeMillis
          if (cursor !== undefined) {
            const from: Id = cursor
            const own = [...g.pending.entries()]
              .filter(([, p]) => p.consumer === consumer && p.at > from)
              .sort(([, a], [, b]) => byId(a, b))
              .slice(0, count)
            cursor = own.length === 0 ? undefined : own[own.length - 1]![1].at
            const out: Array<StreamEntry> = []
            for (const [id, p] of own) {
              const entry = entryOf(id)
              if (entry === undefined) g.pending.delete(id)
              else {
                p.deliveredAt = now
                out.push(plain(entry))
              }
            }
            return out
          }
          if (claimIdleMs !== undefined && (pass !== undefined || now - lastPass >= claimIdleMs)) {
            if (pass === undefined) {
              lastPass = now
              pass = ZERO
            }
            return claimPage(g, now)
          }
          const fresh = after(streams.get(stream), g.lastDelivered, count)
          if (fresh.length === 0) {
            yield* waitUntil(signal, now + blockMs)
            return []
          }
          g.lastDelivered = fresh[fresh.length - 1]!.at
          for (const entry of fresh) g.pending.set(entry.id, { at: entry.at, consumer, deliveredAt: now })
          return fresh.map(plain)
        })
        return Stream.repeatEffect(next).pipe(Stream.flattenIterables)
      })
    )

  return { publish, readLatest, read, createGroup, consume, ack } satisfies CacheStreams.CacheStreams.Service
})

/**
 * In-memory streams as the `CacheStreams` service (each layer its own, empty).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (): Layer.Layer<CacheStreams.CacheStreams> =>
  Layer.effect(CacheStreams.CacheStreams, make)
