/**
 * Typed values answer the same on every tier and every instance: what the schema decodes from
 * the stored (encoded) value, never the writer's own object, which may carry more than the
 * schema keeps (a database row's extra columns).
 */
import { describe, expect, it } from "@effect/vitest"
import { MultiInstance } from "@tiercache/testing"
import { Effect, Option, Schema } from "effect"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })

/** A class, whose instances a typed read must rebuild (not a plain object of its fields). */
class Account extends Schema.Class<Account>("Account")({ id: Schema.Number, opened: Schema.DateFromString }) {
  get label(): string {
    return `account ${this.id}`
  }
}
/** A Date, a bigint and a class: none of them JSON-safe as they are. */
const Ledger = Schema.Struct({ at: Schema.DateFromString, cents: Schema.BigInt, account: Account })
const ledger = (n: number) => ({
  at: new Date(Date.UTC(2024, 0, n)),
  cents: 2n ** 64n + BigInt(n),
  account: new Account({ id: n, opened: new Date(Date.UTC(2020, 0, n)) })
})
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

  // README (Typed reads): "`set(key, value, { schema })` encodes with the schema, so Dates,
  // bigints and classes round-trip".
  it.scoped("Dates, bigints and classes round-trip through a typed set, update and computation", () =>
    Effect.gen(function* () {
      const {
        caches: [a, b],
        l2
      } = yield* MultiInstance.make(2)
      yield* a.set("ledger:1", ledger(1), { schema: Ledger })
      yield* a.update("ledger:2", ledger(2), { schema: Ledger })
      expect(yield* a.getOrComputeTyped("ledger:3", Ledger, Effect.succeed(ledger(3)))).toEqual(ledger(3))
      yield* MultiInstance.settle([a, b])
      for (const n of [1, 2, 3]) {
        const key = `ledger:${n}`
        // Stored encoded: JSON-safe text, as Redis or a file would keep it.
        const stored = Option.getOrThrow(yield* l2!.get(key)).value
        expect(JSON.parse(JSON.stringify(stored))).toEqual(stored)
        expect(stored).toEqual({
          at: ledger(n).at.toISOString(),
          cents: String(ledger(n).cents),
          account: { id: n, opened: ledger(n).account.opened.toISOString() }
        })
        for (const cache of [a, b]) {
          const read = Option.getOrThrow(yield* cache.getTyped(key, Ledger))
          expect(read).toEqual(ledger(n))
          expect(read.at).toBeInstanceOf(Date)
          expect(read.cents).toBe(2n ** 64n + BigInt(n))
          expect(read.account).toBeInstanceOf(Account)
          expect(read.account.label).toBe(`account ${n}`)
        }
      }
    })
  )
})
