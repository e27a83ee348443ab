/**
 * RedisTier's `setMany` lands after the writes and removals of its keys called before it, as
 * every write of the tier does (tierWrites.ts: in the order they were called). A removal, and a
 * write while other commands wait in the driver's auto-pipeline, go through that auto-pipeline,
 * sent at the end of the event-loop turn; `setMany` sent its pipeline at once, ahead of them:
 * the earlier removal or write landed last, and Redis held it instead of what `setMany` wrote.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

/** A RedisTier alone, keys under `smo:`. */
const tierAlone = Effect.map(
  Layer.build(RedisTier.layer({ prefix: "smo:" }).pipe(Layer.provide(connectionLayer()))),
  (context) => Context.get(context, Tier.L2)
)

const entry = (value: string) => Entry.make({ value, now: Date.now(), ttlMs: 60_000 })

/** What the tier holds under `key` after `calls`, called at once in their order, five rounds. */
const afterRounds = (
  tier: Tier.Tier.Service,
  key: string,
  calls: ReadonlyArray<Effect.Effect<unknown, unknown>>
) =>
  Effect.forEach(
    Array.from({ length: 5 }),
    () =>
      Effect.zipRight(
        Effect.all(calls, { concurrency: "unbounded", discard: true }),
        Effect.map(tier.get(key), (found) => Option.getOrNull(Option.map(found, (e) => e.value)))
      ),
    { discard: false }
  )

describe("RedisTier.setMany after a write or removal of its key", () => {
  layer(RedisServer.layer(), { excludeTestServices: true })((it) => {
    it.scoped("a removal called just before it lands first", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const found = yield* afterRounds(tier, "removed", [
          tier.remove(["removed"]),
          tier.setMany([["removed", entry("written")]])
        ])
        expect(found).toEqual(Array.from({ length: 5 }, () => "written"))
      })
    )

    it.scoped("a write called just before it, behind an auto-pipelined command, lands first", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const found = yield* afterRounds(tier, "set", [
          tier.remove(["other"]),
          tier.set("set", entry("first")),
          tier.setMany([["set", entry("second")]])
        ])
        expect(found).toEqual(Array.from({ length: 5 }, () => "second"))
      })
    )

    // The pipeline's own way, unchanged: a write held back for a bus message (corkedSend.ts)
    // is sent before the pipeline.
    it.scoped("a write called just before it on the corked way lands first", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const found = yield* afterRounds(tier, "corked", [
          tier.set("corked", entry("first")),
          tier.setMany([["corked", entry("second")]])
        ])
        expect(found).toEqual(Array.from({ length: 5 }, () => "second"))
      })
    )
  })
})
