import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { vi } from "vitest"
import * as KeyOrder from "../src/internal/keyOrder.js"
import { eventually } from "./utils.js"

/** A landing the test settles by hand: `promise`, settled by `resolve()`. */
const manual = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** A large write of "k" sent, whose landing never comes (Redis paused, or its host gone). */
const neverLands = (order: ReturnType<typeof KeyOrder.make>) =>
  order.after(
    ["k"],
    (landing) =>
      Effect.sync(() => {
        landing(new Promise(() => {}), 0)
      }),
    Effect.void
  )

describe("keyOrder", () => {
  // Redis paused (or its host gone) with a large write of a hot key that never lands: every later
  // write of the key gives up unsent (stuck), each one waiting for the ones before it, so each
  // new one stood behind a chain of all the earlier give-ups, walked once per wait (recursively).
  // Counted, not timed: the tails each wait walks to find its deadline (KeyOrder.work), which
  // grew by one with each give-up (30,000 writes: 181 s, or a stack overflow); a give-up now
  // stands for the large write alone, so each wait walks the write before it and that one.
  it.live("writes of a key that give up behind a large write that never lands stay cheap", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(5)
      yield* neverLands(order)
      yield* Effect.sleep("10 millis")
      let stuck = 0
      let most = 0
      for (let i = 0; i < 30_000 && most <= 2; i++) {
        const walked = KeyOrder.work.tailsWalked
        const outcome = yield* order.after(["k"], () => Effect.succeed("sent"), Effect.succeed("stuck"))
        if (outcome === "stuck") stuck++
        most = Math.max(most, KeyOrder.work.tailsWalked - walked)
      }
      // At least one tail a wait (the count is taken), at most the two.
      expect(most).toBe(2)
      expect(stuck).toBe(30_000)
      // Another key is not held up.
      expect(yield* order.after(["j"], () => Effect.succeed("sent"), Effect.succeed("stuck"))).toBe("sent")
    })
  )

  // A write that waited for a large write and was then sent lands with its own reply: the next
  // write of the key, made right after it returned, is sent too (not taken for one stuck
  // behind it because the first one's registration ends a moment later).
  it.live("a write made right after a write that waited for a large one is sent", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(50)
      const large = yield* Effect.fork(
        order.after(
          ["k"],
          (landing) =>
            Effect.sync(() => {
              landing(new Promise((resolve) => setTimeout(resolve, 20)), 0)
            }),
          Effect.void
        )
      )
      yield* Effect.yieldNow()
      const send = order.after(["k"], () => Effect.succeed("sent"), Effect.succeed("stuck"))
      expect(yield* send).toBe("sent")
      expect(yield* send).toBe("sent")
      expect(yield* send).toBe("sent")
      yield* large.await
    })
  )

  // A write naming one key twice (a setMany or remove batch listing it twice, writeIfNewer's
  // changes) while a large write of the key was in flight: its second listing found the key's
  // tail to be the write's own registration, and the write waited for itself, for good (with
  // nothing before it as well). It waits for the large write only, and runs once that has landed.
  it.live("a write naming its key twice waits for the write before it, not for itself", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(50)
      let landed = false
      const large = yield* Effect.fork(
        order.after(
          ["k"],
          (landing) =>
            Effect.sync(() => {
              landing(
                new Promise((resolve) => setTimeout(resolve, 20)).then(() => {
                  landed = true
                }),
                0
              )
            }),
          Effect.void
        )
      )
      yield* Effect.yieldNow()
      expect(order.waits("k")).toBe(true)
      let sentAfterLanding: boolean | undefined
      const write = (fulls: ReadonlyArray<string>) =>
        order
          .after(
            fulls,
            () =>
              Effect.sync(() => {
                sentAfterLanding = landed
                return "sent"
              }),
            Effect.succeed("stuck")
          )
          .pipe(
            Effect.timeoutTo({
              duration: "1 second",
              onTimeout: () => "waited for good",
              onSuccess: (a) => a
            })
          )
      expect(yield* write(["k", "j", "k"])).toBe("sent")
      expect(sentAfterLanding).toBe(true)
      yield* large.await
      // Nothing in flight: sent at once, and the keys are free again.
      expect(yield* write(["j", "j"])).toBe("sent")
      expect(order.waitsAny(["k", "j"])).toBe(false)
    })
  )

  // Two large writes of a key, the second waiting for the first: once the first has landed, the
  // second is sent and keeps the key registered until it lands itself. A small write issued then
  // waits for it (the first one's end must not free the key the second one registered), else it
  // lands first and the second large write overwrites it.
  it.live("a write that waited for a large one keeps its key until it lands itself", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(1_000)
      const events: Array<string> = []
      const first = manual()
      const second = manual()
      const large = (name: string, lands: ReturnType<typeof manual>) =>
        order.after(
          ["k"],
          (landing) =>
            Effect.sync(() => {
              events.push(`${name} sent`)
              landing(
                lands.promise.then(() => events.push(`${name} landed`)),
                0
              )
            }),
          Effect.sync(() => {
            events.push(`${name} stuck`)
          })
        )
      yield* large("first", first)
      const waiting = yield* Effect.fork(large("second", second))
      // The second registered behind the first (it runs until it waits).
      yield* Effect.yieldNow()
      first.resolve()
      yield* eventually(
        Effect.filterOrFail(
          Effect.sync(() => events),
          (happened) => happened.includes("second sent")
        )
      )
      expect(events).toEqual(["first sent", "first landed", "second sent"])
      expect(order.waits("k")).toBe(true)
      const small = yield* Effect.fork(
        order.after(
          ["k"],
          () =>
            Effect.sync(() => {
              events.push("small sent")
            }),
          Effect.void
        )
      )
      // The small write registered behind the second (it runs until it waits).
      yield* Effect.yieldNow()
      second.resolve()
      yield* small.await
      yield* waiting.await
      expect(events).toEqual(["first sent", "first landed", "second sent", "second landed", "small sent"])
    })
  )

  // A write whose command timed out (Redis slow, not gone) ends with the command still on its
  // way: a write of the key issued then waits a command's timeout more for it to land (the PING
  // behind it), not giving up at once because the command's own timeout has passed.
  it.live("a write after one whose command timed out waits a command's timeout for its landing", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(200)
      const lands = manual()
      yield* order.after(
        ["k"],
        (landing) =>
          Effect.zipRight(
            Effect.sync(() => landing(lands.promise, 0)),
            // Its caller gives up on the reply a command's timeout later (and a little more).
            Effect.sleep("250 millis")
          ),
        Effect.void
      )
      expect(order.waits("k")).toBe(true)
      // Past the command's own deadline (given at once, 200 ms): only the timeout more keeps the
      // next write waiting. It lands a few event-loop turns later (a write past its wait gives up
      // in one), with 170 ms of room for a loaded host.
      const next = yield* Effect.fork(
        order.after(["k"], () => Effect.succeed("sent"), Effect.succeed("stuck"))
      )
      yield* Effect.sleep("20 millis")
      lands.resolve()
      expect(yield* Fiber.join(next)).toBe("sent")
    })
  )

  // The wall clock stepped back (NTP, a VM restored) while a write waits behind a large write
  // that does not land: the wait stays a command's timeout, not the step's length (an hour
  // here), nor does a step forward make a healthy write give up.
  it.live("a wall clock step does not stretch or cut the wait for a large write", () =>
    Effect.gen(function* () {
      const order = KeyOrder.make(50)
      yield* neverLands(order)
      const now = Date.now.bind(Date)
      const back = vi.spyOn(Date, "now").mockImplementation(() => now() - 3_600_000)
      const outcome = yield* order
        .after(["k"], () => Effect.succeed("sent"), Effect.succeed("stuck"))
        .pipe(Effect.timeout("1 second"), Effect.ensuring(Effect.sync(() => back.mockRestore())))
      expect(outcome).toBe("stuck")
      // Forward: a write right after a large one that landed is sent.
      const forward = vi.spyOn(Date, "now")
      let step = 0
      forward.mockImplementation(() => now() + step)
      const sent = yield* order
        .after(
          ["j"],
          (landing) =>
            Effect.sync(() => {
              landing(new Promise((resolve) => setTimeout(resolve, 20)), 0)
            }),
          Effect.void
        )
        .pipe(
          Effect.zipRight(
            Effect.sync(() => {
              step = 3_600_000
            })
          ),
          Effect.zipRight(order.after(["j"], () => Effect.succeed("sent"), Effect.succeed("stuck"))),
          Effect.ensuring(Effect.sync(() => forward.mockRestore()))
        )
      expect(sent).toBe("sent")
    })
  )
})
