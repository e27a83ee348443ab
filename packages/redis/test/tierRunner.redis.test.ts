/**
 * RedisTier's batches (tierRunner.ts `exec`): bounded as a whole by the command timeout, yet a
 * batch Redis answered in time succeeds even when the event loop reads its replies only after
 * the bound has passed (held by a long computation), and one with no reply still fails.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Duration, Effect, Exit, Fiber } from "effect"
import * as TierRunner from "../src/internal/tierRunner.js"
import { commandClient, observer } from "./utils.js"

const TIMEOUT_MS = 200

/** The command connection's client, with a command timeout of TIMEOUT_MS, for the test. */
const timedClient = commandClient({ commandTimeout: `${TIMEOUT_MS} millis` })

describe("RedisTier's batches", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("a batch answered while the event loop was held past its bound succeeds", () =>
      Effect.gen(function* () {
        const client = yield* timedClient
        const runner = TierRunner.make("L2", Duration.millis(TIMEOUT_MS))
        for (let round = 0; round < 4; round++) {
          // Started at once, so that the pipeline is written before the event loop is held.
          const batch = Effect.runFork(
            runner.exec("setMany", () => client.pipeline().set(`b:${round}`, "1").set(`c:${round}`, "2")),
            { immediate: true }
          )
          // Redis answers at once; the event loop, held twice the bound, reads the replies only
          // after the batch's timer is due.
          const until = performance.now() + 2 * TIMEOUT_MS
          while (performance.now() < until) {
            // held
          }
          const exit = yield* Fiber.await(batch)
          expect({ round, exit: Exit.isSuccess(exit) ? exit.value : exit }).toEqual({
            round,
            exit: ["OK", "OK"]
          })
        }
      })
    )

    it.scoped("a batch without a reply fails with the tier's error", () =>
      Effect.gen(function* () {
        const client = yield* timedClient
        const look = yield* observer
        const runner = TierRunner.make("L2", Duration.millis(TIMEOUT_MS))
        const sleeping = yield* Effect.fork(Effect.promise(() => look.call("DEBUG", "SLEEP", "1")))
        yield* Effect.sleep("30 millis")
        const error = yield* Effect.flip(runner.exec("setMany", () => client.pipeline().set("d", "1")))
        expect(error).toMatchObject({ _tag: "TierError", tier: "L2", operation: "setMany" })
        // Failed by the bound, while Redis still slept.
        expect(sleeping.unsafePoll()).toBeNull()
        yield* Fiber.join(sleeping)
      })
    )
  })
})
