/**
 * What RedisTier offers the cache's auto-recovery: a conditional write (`writeIfNewer`, one Lua
 * script that compares the stored entry's `createdAt` with the change's time and writes or
 * removes only when the stored entry is not newer), and the command connection's readiness
 * after a reconnection (`ready`).
 */
import type { CacheError, Entry, Tier } from "@tiercache/core"
import { CacheMetrics, Entry as EntryModule } from "@tiercache/core"
import { Effect, Metric, Stream } from "effect"
import type { Redis } from "ioredis"
import { forEachAtOnce } from "./allAtOnce.js"
import type { LargeValues } from "./largeValues.js"
import { pxOf } from "./px.js"

/**
 * KEYS[i], ARGV[3i-2] the change's time, ARGV[3i-1] the envelope ('' removes), ARGV[3i] the PX.
 * The stored entry's createdAt is read from the envelope's tail (`"c":<ms>}` is its last field),
 * so a large value is not copied into the script; a value that is no entry is replaced. Answers
 * per key: 0 kept (the stored entry is newer), 1 applied, FOREIGN applied over a value that is no
 * entry (a string without the envelope's tail, or a key of another type: WRONGTYPE).
 */
const SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local at = tonumber(ARGV[3 * i - 2])
  local value = ARGV[3 * i - 1]
  local tail = redis.pcall('GETRANGE', KEYS[i], -48, -1)
  local created = nil
  local foreign = false
  if type(tail) == 'string' then
    created = tonumber(string.match(tail, '"c":(%-?[%d%.eE%+]+)}$'))
    if created == nil and (tail ~= '' or redis.call('EXISTS', KEYS[i]) == 1) then foreign = true end
  else
    foreign = true
  end
  if created ~= nil and created > at then
    out[i] = 0
  else
    if value == '' then redis.call('UNLINK', KEYS[i]) else redis.call('SET', KEYS[i], value, 'PX', ARGV[3 * i]) end
    if foreign then out[i] = 2 else out[i] = 1 end
  end
end
return out
`

/** The script's answer for a change applied over a value that was no cache entry. */
const FOREIGN = 2

const COMMAND = "tiercacheWriteIfNewer"

/** Changes per script call. */
const CHUNK = 128

interface Scripted {
  readonly tiercacheWriteIfNewer: (numKeys: number, ...args: Array<string>) => Promise<Array<number>>
}

/** One change, ready for the script. */
interface Prepared {
  readonly full: string
  /** The change's time. */
  readonly at: string
  /** The encoded entry; '' removes (no entry, or one gone when the change was prepared). */
  readonly value: string
  /** The entry's `staleUntil`, from which the PX is counted when the change is sent. */
  readonly staleUntil: number
  readonly large: boolean
}

/**
 * The script's arguments for `p` with `px` (its PX, counted as it is sent): an entry gone by
 * then is removed, not stored. A change may wait for a slot behind the large ones before it (or
 * for the marker and the large-value connection's open): counted when prepared, its PX kept it
 * in Redis past its `staleUntil` for as long as it waited.
 */
const argsOf = (p: Prepared, px: number): readonly [string, string, string] => [
  p.at,
  px > 0 ? p.value : "",
  String(Math.max(1, px))
]

/**
 * The conditional write of a tier on `client`, keys under `prefix`. A change carrying a large
 * value goes alone to the large-value connection with a timeout for its size, as writes do.
 * `landing`, when given, is handed each command's reply as it is sent (RedisTier runs the
 * write in its keys' order: keyOrder.ts).
 */
export const writeIfNewer = (
  client: Redis,
  large: LargeValues,
  prefix: string,
  now: () => number,
  fail: (cause: unknown) => CacheError.TierError,
  name: string
): ((
  changes: ReadonlyArray<Tier.Tier.Change>,
  landing?: (reply: Promise<unknown>) => void
) => Effect.Effect<ReadonlyArray<boolean>, CacheError.TierError>) => {
  if (!(COMMAND in client)) client.defineCommand(COMMAND, { lua: SCRIPT })
  const foreignValues = Metric.tagged(CacheMetrics.foreignValues, "tier", name)
  /**
   * Counts the values that were no cache entry among those a call met (CacheMetrics.foreignValues:
   * its read of the stored entry's time is a read that met one), as the reads count theirs.
   */
  const countForeign = (met: number): Effect.Effect<void> =>
    Metric.incrementBy(foreignValues, met).pipe(
      Effect.zipRight(
        Effect.logDebug("redis value is not a cache entry; replaced by a conditional write").pipe(
          Effect.annotateLogs({ tier: name })
        )
      )
    )
  const scripted = client as unknown as Scripted
  const prepare = (change: Tier.Tier.Change, t: number): Prepared => {
    const entry: Entry.Entry | undefined = change.entry
    const staleUntil = entry === undefined ? 0 : entry.staleUntil
    const value = entry !== undefined && pxOf(staleUntil, t) > 0 ? EntryModule.serialize(entry) : ""
    return {
      full: prefix + change.key,
      at: String(change.at),
      value,
      staleUntil,
      large: value !== "" && large.isLarge(value)
    }
  }
  const small = (chunk: ReadonlyArray<Prepared>, landing: ((reply: Promise<unknown>) => void) | undefined) =>
    Effect.tryPromise({
      try: () => {
        const t = now()
        const reply = scripted.tiercacheWriteIfNewer(
          chunk.length,
          ...chunk.map((p) => p.full),
          ...chunk.flatMap((p) => argsOf(p, pxOf(p.staleUntil, t)))
        )
        landing?.(reply)
        return reply
      },
      catch: fail
    })
  const alone = (p: Prepared, landing: ((reply: Promise<unknown>) => void) | undefined) =>
    Effect.mapError(
      Effect.map(
        large.eval(SCRIPT, p.full, (px) => argsOf(p, px), Buffer.byteLength(p.value), p.staleUntil, landing),
        (reply) => [Array.isArray(reply) ? Number(reply[0]) : 0]
      ),
      fail
    )
  return (changes, landing) =>
    Effect.suspend(() => {
      const t = now()
      const prepared = changes.map((change) => prepare(change, t))
      const batches: Array<Effect.Effect<ReadonlyArray<number>, CacheError.TierError>> = []
      const order: Array<ReadonlyArray<number>> = []
      let chunk: Array<Prepared> = []
      let indices: Array<number> = []
      const flush = () => {
        if (chunk.length === 0) return
        batches.push(small(chunk, landing))
        order.push(indices)
        chunk = []
        indices = []
      }
      prepared.forEach((p, i) => {
        if (p.large) {
          batches.push(alone(p, landing))
          order.push([i])
          return
        }
        chunk.push(p)
        indices.push(i)
        if (chunk.length >= CHUNK) flush()
      })
      flush()
      return Effect.flatMap(
        forEachAtOnce(batches, (batch) => batch, 4),
        (replies) => {
          const applied: Array<boolean> = new Array(changes.length).fill(false)
          let foreign = 0
          replies.forEach((reply, b) => {
            order[b]!.forEach((index, j) => {
              applied[index] = reply[j] === 1 || reply[j] === FOREIGN
              if (reply[j] === FOREIGN) foreign++
            })
          })
          return foreign === 0 ? Effect.succeed(applied) : Effect.as(countForeign(foreign), applied)
        }
      )
    })
}

/** Emits each time `client` is ready again (every "ready" after the first connection). */
export const ready = (client: Redis): Stream.Stream<void> =>
  Stream.async<void>((emit) => {
    const onReady = () => {
      emit.single(undefined)
    }
    client.on("ready", onReady)
    return Effect.sync(() => {
      client.off("ready", onReady)
    })
  })
