import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import * as Signal from "../src/internal/signal.js"

// The one-shot result flights and pending stores wait on (internal/signal.ts).

describe("Signal", () => {
  it.effect("every waiter gets the result; a wait after it answers at once", () =>
    Effect.gen(function* () {
      const signal = Signal.make<number, string>()
      const waiters = yield* Effect.forEach(Array.from({ length: 100 }), () =>
        Effect.fork(Signal.wait(signal))
      )
      yield* Effect.yieldNow()
      Signal.done(signal, Exit.succeed(7))
      for (const fiber of waiters) expect(yield* Fiber.join(fiber)).toBe(7)
      expect(yield* Signal.wait(signal)).toBe(7)
    })
  )

  it.effect("a failure reaches every waiter; a second result is ignored", () =>
    Effect.gen(function* () {
      const signal = Signal.make<number, string>()
      const waiter = yield* Effect.fork(Signal.wait(signal))
      yield* Effect.yieldNow()
      Signal.done(signal, Exit.fail("boom"))
      Signal.done(signal, Exit.succeed(1))
      expect(yield* Effect.exit(Fiber.join(waiter))).toEqual(Exit.fail("boom"))
      expect(yield* Effect.exit(Signal.wait(signal))).toEqual(Exit.fail("boom"))
    })
  )

  it.effect("an interrupted waiter leaves: the others still get the result, and nothing keeps it", () =>
    Effect.gen(function* () {
      const signal = Signal.make<string>()
      const left = yield* Effect.fork(Signal.wait(signal))
      const stays = yield* Effect.fork(Signal.wait(signal))
      yield* Effect.yieldNow()
      expect(signal.waiters?.length).toBe(2)
      yield* Fiber.interrupt(left)
      expect(signal.waiters?.length).toBe(1)
      Signal.done(signal, Exit.succeed("ok"))
      expect(yield* Fiber.join(stays)).toBe("ok")
      expect(signal.waiters).toBeUndefined()
    })
  )

  it.effect("a wait made before the result and run after it answers the result", () =>
    Effect.gen(function* () {
      const signal = Signal.make<number>()
      const waiting = Signal.wait(signal)
      Signal.done(signal, Exit.succeed(3))
      const fiber = yield* Effect.fork(waiting)
      yield* Effect.yieldNow()
      expect(yield* Fiber.poll(fiber)).toEqual(Option.some(Exit.succeed(3)))
    })
  )

  it.effect("a wait that timed out leaves: nothing keeps it, and the result later wakes no one", () =>
    Effect.gen(function* () {
      const signal = Signal.make<number>()
      const answer = yield* Signal.waitWithin(
        signal,
        (n) => n,
        1,
        () => Effect.succeed("timed out")
      )
      expect(answer).toBe("timed out")
      expect(signal.waiters ?? []).toEqual([])
      Signal.done(signal, Exit.succeed(1))
    })
  )
})
