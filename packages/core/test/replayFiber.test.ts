/**
 * The replay of changes kept during an outage runs in fibers of the cache: one every
 * `recovery.retryInterval`, and one per lower tier watching its `ready` stream. A replay pass
 * that died of something no tier's or bus's shield catches (a tier's call that interrupts itself)
 * ended the periodic fiber for good: kept changes were never replayed again, and nothing said so.
 * Such a pass is now logged at Error level with its cause, and the next one runs. (A user Tier
 * whose `writeIfNewer` answers `undefined` from plain JavaScript made a pass die too; such an
 * answer is now the tier's failure: tierDefects.test.ts.) A tier's `ready` stream that ended
 * (died, interrupted itself, completed) ended its watching fiber as silently: the tier's later
 * reconnections replayed nothing. It is now logged at Error level and run again.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Exit, Option, Queue, Scope, Stream, TestClock } from "effect"
import { applyAll, capture, keptChangeWorld } from "./keptReplay.js"

/** Lets the cache's fibers run (they wait for nothing but their turn). */
const turns = Effect.repeatN(Effect.yieldNow(), 50)

/** What the tier's writeIfNewer does wrong in the first two replays. */
const wrongs = {
  // A tier's call that interrupts itself (the shield passes interruptions on as they are).
  "interrupts itself": { answer: Effect.interrupt, cause: "interrupted" }
} as const

describe("a replay pass that dies", () => {
  it.scoped.each(Object.keys(wrongs) as Array<keyof typeof wrongs>)(
    "(writeIfNewer %s) is logged at Error level with its cause, and the next pass replays the change",
    (wrong) =>
      Effect.gen(function* () {
        const w = yield* keptChangeWorld(wrongs[wrong].answer)
        for (let i = 1; i <= 2; i++) {
          yield* TestClock.adjust("1 second")
          expect(w.replays()).toBe(i)
          expect((yield* w.cache.stats).pendingChanges).toBe(1)
        }
        const said = w.lines.filter((l) => l.startsWith("ERROR") && l.includes("replay"))
        expect(said.length).toBe(2)
        // The cause is in the log line (the interruption).
        expect(said[0]).toContain(wrongs[wrong].cause)
        yield* TestClock.adjust("1 second")
        expect(w.replays()).toBe(3)
        const stats = yield* w.cache.stats
        expect([stats.pendingChanges, stats.replayedChanges]).toEqual([0, 1])
        expect(Option.map(yield* w.store.get("k"), (e) => e.value)).toEqual(Option.some("kept"))
      })
  )
})

/** What the test feeds a ready stream: a signal, or the stream's death, interruption or end. */
type Signal = "ready" | "die" | "interrupt" | "end"

/** A user tier over a TestTier whose `ready` stream the test feeds (a Signal each). */
const readyWorld = Effect.gen(function* () {
  const store = yield* TestTier.make()
  const signals = yield* Queue.unbounded<Signal>()
  let runs = 0
  const ready = Stream.suspend(() => {
    runs++
    return Stream.fromQueue(signals, { maxChunkSize: 1 }).pipe(
      Stream.takeWhile((s) => s !== "end"),
      Stream.mapEffect((s) => {
        if (s === "die") throw new Error("the tier's ready stream died")
        return s === "interrupt" ? Effect.interrupt : Effect.void
      })
    )
  })
  let replays = 0
  const l2: Tier.Tier.Service = {
    ...store,
    ready,
    writeIfNewer: (changes) => {
      replays++
      return applyAll(store, changes)
    }
  }
  const log = capture()
  // No periodic replay within the test: only a ready signal replays.
  const cache = yield* TieredCache.make({ recovery: { retryInterval: "1 hour" } }).pipe(
    Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
    Effect.provideService(Tier.L2, l2),
    Effect.provide(log.layer)
  )
  /** Keeps a change of `key` (the tier fails its write), then lets the tier take writes again. */
  const keep = (key: string) =>
    Effect.gen(function* () {
      yield* store.failOn(["set"])
      yield* cache.set(key, "kept")
      yield* store.failOn("none")
      expect((yield* cache.stats).pendingChanges).toBe(1)
    })
  const signal = (s: Signal) => Effect.zipRight(signals.offer(s), turns)
  return {
    cache,
    store,
    keep,
    signal,
    lines: log.lines,
    runs: () => runs,
    replays: () => replays
  }
})

describe("a tier's ready stream that ends", () => {
  it.scoped("dies: logged at Error level with its cause, run again, and its next signal replays", () =>
    Effect.gen(function* () {
      const w = yield* readyWorld
      yield* turns
      expect(w.runs()).toBe(1)
      yield* w.keep("a")
      yield* w.signal("ready")
      expect([w.replays(), (yield* w.cache.stats).pendingChanges]).toEqual([1, 0])
      yield* w.signal("die")
      const said = w.lines.filter((l) => l.startsWith("ERROR") && l.includes("ready stream"))
      expect(said.length).toBe(1)
      expect(said[0]).toContain("the tier's ready stream died")
      // Run again after a short pause (the run before it had emitted).
      yield* TestClock.adjust("100 millis")
      yield* turns
      expect(w.runs()).toBe(2)
      yield* w.keep("b")
      yield* w.signal("ready")
      expect([w.replays(), (yield* w.cache.stats).pendingChanges]).toEqual([2, 0])
      expect(Option.map(yield* w.store.get("b"), (e) => e.value)).toEqual(Option.some("kept"))
    })
  )

  it.scoped("interrupts itself: logged at Error level and run again", () =>
    Effect.gen(function* () {
      const w = yield* readyWorld
      yield* turns
      yield* w.signal("interrupt")
      expect(w.lines.filter((l) => l.startsWith("ERROR") && l.includes("ready stream")).length).toBe(1)
      yield* TestClock.adjust("100 millis")
      yield* turns
      expect(w.runs()).toBe(2)
      yield* w.keep("d")
      yield* w.signal("ready")
      expect([w.replays(), (yield* w.cache.stats).pendingChanges]).toEqual([1, 0])
    })
  )

  it.scoped("completes: run again too; the pause grows while runs end without a signal", () =>
    Effect.gen(function* () {
      const w = yield* readyWorld
      yield* turns
      yield* w.signal("end")
      expect(w.lines.filter((l) => l.startsWith("ERROR") && l.includes("ready stream")).length).toBe(1)
      // Pauses of 100, 200, 400 ms: runs 2, 3, 4 (each ending at once, unheard).
      yield* w.signal("end")
      yield* w.signal("end")
      yield* TestClock.adjust("100 millis")
      yield* turns
      expect(w.runs()).toBe(2)
      yield* TestClock.adjust("199 millis")
      yield* turns
      expect(w.runs()).toBe(2)
      yield* TestClock.adjust("1 millis")
      yield* turns
      expect(w.runs()).toBe(3)
      yield* TestClock.adjust("400 millis")
      yield* turns
      expect(w.runs()).toBe(4)
      // The fourth run waits for signals: a ready one replays.
      yield* w.keep("c")
      yield* w.signal("ready")
      expect([w.replays(), (yield* w.cache.stats).pendingChanges]).toEqual([1, 0])
    })
  )
})

describe("the cache's close", () => {
  it.effect("ends the watch of a ready stream and the periodic replay: nothing runs, nothing logged", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const w = yield* Scope.extend(readyWorld, scope)
      yield* turns
      expect(w.runs()).toBe(1)
      yield* w.keep("z")
      yield* Scope.close(scope, Exit.void)
      // A watch left running would take this, log it and run the stream again.
      yield* w.signal("die")
      yield* TestClock.adjust("2 hours")
      yield* turns
      // Neither the watch nor the periodic replay (every hour here) outlived the cache.
      expect([w.runs(), w.replays()]).toEqual([1, 0])
      expect(w.lines.filter((l) => l.startsWith("ERROR"))).toEqual([])
    })
  )
})
