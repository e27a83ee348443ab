/**
 * The world of a change kept during an outage and replayed past a wrong `writeIfNewer`
 * (replayFiber.test.ts: a replay pass that dies; tierDefects.test.ts: a tier that dies, or
 * answers what the contract does not allow, while changes are replayed): one cache over a
 * MemoryTier L1 and a user tier over a TestTier as L2, replaying every second, whose
 * `writeIfNewer` answers `wrong` in the first two replays and then applies every change. The
 * change of `k` ("kept") is kept before the world is handed over: the tier failed its write.
 */
import type { CacheError } from "@tiercache/core"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Cause, Effect, Logger, LogLevel } from "effect"
import { expect } from "vitest"

/** Log lines at Warning level and above (`level message cause`), and the layer that keeps them. */
export const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message, cause }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning))
      lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** writeIfNewer as a tier that holds nothing newer: every change applies to `store`. */
export const applyAll = (store: Tier.Tier.Service, changes: ReadonlyArray<Tier.Tier.Change>) =>
  Effect.as(
    Effect.forEach(changes, (c) =>
      c.entry === undefined ? store.remove([c.key]) : store.set(c.key, c.entry)
    ),
    changes.map(() => true)
  )

/** Options of {@link keptChangeWorld}. */
export interface KeptOptions {
  /** The tier's name (default: the TestTier's). */
  readonly tierName?: string
  /** More options of the cache (its recovery replays every second whatever they say). */
  readonly cache?: Omit<TieredCache.Options, "recovery">
}

/**
 * The cache with the change of `k` kept, the tier taking writes again; `replays()` counts the
 * calls of its writeIfNewer, of which the first two answer `wrong`.
 */
export const keptChangeWorld = (
  wrong: Effect.Effect<ReadonlyArray<boolean>, CacheError.TierError>,
  options: KeptOptions = {}
) =>
  Effect.gen(function* () {
    const store = yield* TestTier.make()
    let replays = 0
    const l2: Tier.Tier.Service = {
      ...store,
      ...(options.tierName === undefined ? {} : { name: options.tierName }),
      writeIfNewer: (changes) => {
        replays++
        return replays <= 2 ? wrong : applyAll(store, changes)
      }
    }
    const log = capture()
    const cache = yield* TieredCache.make({ ...options.cache, recovery: { retryInterval: "1 second" } }).pipe(
      Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
      Effect.provideService(Tier.L2, l2),
      Effect.provide(log.layer)
    )
    // An outage (a typed failure of the tier's write) keeps the change.
    yield* store.failOn(["set"])
    yield* cache.set("k", "kept")
    expect((yield* cache.stats).pendingChanges).toBe(1)
    yield* store.failOn("none")
    return { cache, store, lines: log.lines, replays: () => replays }
  })
