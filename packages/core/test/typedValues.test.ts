/**
 * Typed values answer the same on every tier and every instance: what the schema decodes from
 * the stored (encoded) value, never the writer's own object, which may carry more than the
 * schema keeps (a database row's extra columns).
 */
import { describe, expect, it } from "@effect/vitest"
import { MultiInstance } from "@tiercache/testing"
import { Effect, Option, Schema } from "effect"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
/** A row as a database hands it: more columns than the schema keeps. */
const row = (id: number) => ({ id, name: `user ${id}`, passwordHash: "$2b$10$secret" })

describe("typed values", () => {
  it.scoped("a typed set answers the writer's L1 as it answers every other instance", () =>
    Effect.gen(function* () {
      const {
        caches: [a, b]
      } = yield* MultiInstance.make(2)
      yield* a.set("user:1", row(1), { schema: User })
      yield* a.update("user:2", row(2), { schema: User })
      yield* MultiInstance.settle([a, b])
      for (const key of ["user:1", "user:2"]) {
        const there = yield* b.getTyped(key, User)
        expect(there).toEqual(Option.some({ id: Number(key.slice(5)), name: `user ${key.slice(5)}` }))
        expect(yield* a.getTyped(key, User)).toEqual(there)
        expect(yield* a.getOrComputeTyped(key, User, Effect.die("cached"))).toEqual(Option.getOrThrow(there))
      }
    })
  )

  it.scoped("a typed computation answers its callers and the writer's L1 what every instance reads", () =>
    Effect.gen(function* () {
      const {
        caches: [a, b]
      } = yield* MultiInstance.make(2)
      const computed = yield* a.getOrComputeTyped("user:3", User, Effect.succeed(row(3)))
      yield* MultiInstance.settle([a, b])
      const expected = { id: 3, name: "user 3" }
      expect(computed).toEqual(expected)
      expect(yield* a.getTyped("user:3", User)).toEqual(Option.some(expected))
      expect(yield* b.getTyped("user:3", User)).toEqual(Option.some(expected))
    })
  )
})
