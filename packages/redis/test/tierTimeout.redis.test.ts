/**
 * README, Semantics "Tier timeouts and circuit breaker" and Features "Timeouts and circuit
 * breaker": a slow Redis costs a call at most the tier timeout. Here Redis answers, but 2 s late
 * (a proxy holds its replies), and the connection's own command timeout is longer than that, so
 * only the tier timeout (200 ms) can cut the calls.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Effect, Option } from "effect"
import { delayingProxy, redisInstance, timed } from "./utils.js"

const TIMEOUT_MS = 200
const REDIS_LATE_MS = 2_000
/** Well under the 2 s Redis takes: a call that waited for it fails this bound. */
const BOUND_MS = 1_000

describe("a Redis answering 2 s late, with the tier timeout at 200 ms", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "20 seconds" })((it) => {
    it.scoped(
      "get, getOrCompute and set each answer within about the tier timeout, not when Redis does",
      () =>
        Effect.gen(function* () {
          const proxy = yield* delayingProxy
          const { cache } = yield* redisInstance(
            "late",
            { port: proxy.port, commandTimeout: "10 seconds" },
            {},
            { prefix: "late:" },
            { breaker: { timeout: `${TIMEOUT_MS} millis` } }
          )
          yield* cache.set("warm", 1) // the connections are up and answered in time
          proxy.delay(REDIS_LATE_MS)
          const [getMs, got] = yield* timed(cache.get("absent"))
          const [computeMs, computed] = yield* timed(cache.getOrCompute("computed", Effect.succeed("fresh")))
          const [setMs] = yield* timed(cache.set("written", "v"))
          expect([got, computed]).toEqual([Option.none(), "fresh"])
          expect(yield* cache.get("written")).toEqual(Option.some("v"))
          for (const ms of [getMs, computeMs, setMs]) expect(ms).toBeLessThan(BOUND_MS)
          // The calls did reach the late Redis and were cut at the timeout (not refused at once).
          expect(getMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 5)
          expect((yield* cache.stats).tierErrors.redis).toBeGreaterThanOrEqual(2)
          yield* Effect.log(`late Redis: get ${getMs} ms, getOrCompute ${computeMs} ms, set ${setMs} ms`)
        })
    )
  })
})
