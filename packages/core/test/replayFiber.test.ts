/**
 * The replay of changes kept during an outage runs every `recovery.retryInterval` in one fiber of
 * the cache. A replay pass that died of something no tier's or bus's shield catches (a user Tier
 * whose `writeIfNewer` answers `undefined`, not an array, from plain JavaScript; a tier's call
 * that interrupts itself) ended that fiber for good: kept changes were never replayed again, and
 * nothing said so. Such a pass is now logged at Error level with its cause, and the next one runs.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Cause, Effect, Logger, LogLevel, Option, TestClock } from "effect"

const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message, cause }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning))
      lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** writeIfNewer as a tier that holds nothing newer: every change applies to `store`. */
const applyAll = (store: Tier.Tier.Service, changes: ReadonlyArray<Tier.Tier.Change>) =>
  Effect.as(
    Effect.forEach(changes, (c) =>
      c.entry === undefined ? store.remove([c.key]) : store.set(c.key, c.entry)
    ),
    changes.map(() => true)
  )

/** What the tier's writeIfNewer does wrong in the first two replays. */
const wrongs = {
  // A plain-JavaScript tier that forgot to answer: `undefined`, not an array of booleans.
  "answers undefined": {
    answer: Effect.succeed(undefined as unknown as ReadonlyArray<boolean>),
    cause: "TypeError"
  },
  // A tier's call that interrupts itself (the shield passes interruptions on as they are).
  "interrupts itself": { answer: Effect.interrupt, cause: "interrupted" }
} as const

describe("a replay pass that dies", () => {
  it.scoped.each(Object.keys(wrongs) as Array<keyof typeof wrongs>)(
    "(writeIfNewer %s) is logged at Error level with its cause, and the next pass replays the change",
    (wrong) =>
      Effect.gen(function* () {
        const store = yield* TestTier.make()
        let replays = 0
        const l2: Tier.Tier.Service = {
          ...store,
          writeIfNewer: (changes) => {
            replays++
            if (replays <= 2) return wrongs[wrong].answer
            return applyAll(store, changes)
          }
        }
        const log = capture()
        const cache = yield* TieredCache.make({ recovery: { retryInterval: "1 second" } }).pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
          Effect.provideService(Tier.L2, l2),
          Effect.provide(log.layer)
        )
        yield* store.failOn(["set"])
        yield* cache.set("k", "kept")
        expect((yield* cache.stats).pendingChanges).toBe(1)
        yield* store.failOn("none")
        for (let i = 1; i <= 2; i++) {
          yield* TestClock.adjust("1 second")
          expect(replays).toBe(i)
          expect((yield* cache.stats).pendingChanges).toBe(1)
        }
        const said = log.lines.filter((l) => l.startsWith("ERROR") && l.includes("replay"))
        expect(said.length).toBe(2)
        // The cause is in the log line (the TypeError of reading the answer, the interruption).
        expect(said[0]).toContain(wrongs[wrong].cause)
        yield* TestClock.adjust("1 second")
        expect(replays).toBe(3)
        const stats = yield* cache.stats
        expect([stats.pendingChanges, stats.replayedChanges]).toEqual([0, 1])
        expect(Option.map(yield* store.get("k"), (e) => e.value)).toEqual(Option.some("kept"))
      })
  )
})
