/**
 * The tests of `TierSuite.run` that call the tier itself, one obligation of `Tier.Service` each
 * (removals, patterns, clear, batch reads, the grace window, `writeIfNewer`, `setThen`,
 * `health`). Each check is a function of the tier, so that the suite's own test can run it
 * against a tier that breaks its obligation and see it fail.
 *
 * @internal
 */
import { expect, type Vitest } from "@effect/vitest"
import { Entry, type Tier } from "@tiercache/core"
import { Clock, Effect, Option, TestClock } from "effect"
import { type Context, freshKey } from "./suiteContext.js"

/** One obligation of a tier: what the suite's test says, and the check of a tier. */
export interface Check {
  readonly name: string
  /** Checks `tier`; `live`: the tier expires entries on the real clock. Fails (an assertion) when broken. */
  readonly run: (tier: Tier.Tier.Service, live: boolean) => Effect.Effect<void, unknown>
}

/** The values held under `keys` (None where absent), read with getMany. */
const valuesOf = (tier: Tier.Tier.Service, keys: ReadonlyArray<string>) =>
  Effect.map(tier.getMany(keys), (found) => found.map(Option.map((e) => e.value)))

/** Writes `value` (its own value) under each key, for a minute, created at `at` (default: the clock's now). */
const fill = (tier: Tier.Tier.Service, keys: ReadonlyArray<string>, at?: number) =>
  Effect.flatMap(at === undefined ? Clock.currentTimeMillis : Effect.succeed(at), (now) =>
    tier.setMany(keys.map((key) => [key, Entry.make({ value: key, now, ttlMs: 60_000 })] as const))
  )

/** The obligations, in the order the suite registers them. */
export const checks: ReadonlyArray<Check> = [
  {
    name: "remove removes the given keys (absent ones are no error) and no other",
    run: (tier) =>
      Effect.gen(function* () {
        const [a, b, kept] = [freshKey("remove"), freshKey("remove"), freshKey("remove")]
        yield* fill(tier, [a, b, kept])
        yield* tier.remove([a, freshKey("absent"), b])
        expect(yield* valuesOf(tier, [a, b, kept])).toEqual([Option.none(), Option.none(), Option.some(kept)])
        yield* tier.remove([freshKey("absent")])
      })
  },
  {
    name: "removeMatching removes the keys a Redis-style glob (* ? [ab] \\*) matches, no other, and answers how many",
    run: (tier) =>
      Effect.gen(function* () {
        const base = freshKey("glob")
        const keys = [`${base}:a1`, `${base}:b2`, `${base}:c3`, `${base}:x*`, `${base}:xy`, `${base}x:a1`]
        yield* fill(tier, keys)
        const removed = [
          yield* tier.removeMatching(`${base}:[ab]?`),
          yield* tier.removeMatching(`${base}:x\\*`),
          yield* tier.removeMatching(`${base}:nothing*`)
        ]
        expect(removed).toEqual([2, 1, 0])
        expect(yield* valuesOf(tier, keys)).toEqual([
          Option.none(),
          Option.none(),
          Option.some(`${base}:c3`),
          Option.none(),
          Option.some(`${base}:xy`),
          Option.some(`${base}x:a1`)
        ])
        expect(yield* tier.removeMatching(`${base}:*`)).toBe(2)
        expect(yield* valuesOf(tier, [`${base}x:a1`])).toEqual([Option.some(`${base}x:a1`)])
      })
  },
  {
    name: "clear removes every key",
    run: (tier) =>
      Effect.gen(function* () {
        const keys = [freshKey("clear"), freshKey("clear")]
        yield* fill(tier, keys)
        yield* tier.clear
        expect(yield* valuesOf(tier, keys)).toEqual([Option.none(), Option.none()])
      })
  },
  {
    name: "getMany answers each key's entry in the order of its keys (a repeated key each time, None where absent)",
    run: (tier) =>
      Effect.gen(function* () {
        const [a, b, absent] = [freshKey("many"), freshKey("many"), freshKey("absent")]
        yield* fill(tier, [a, b])
        expect(yield* valuesOf(tier, [b, absent, a, b])).toEqual([
          Option.some(b),
          Option.none(),
          Option.some(a),
          Option.some(b)
        ])
        expect(yield* tier.getMany([])).toEqual([])
      })
  },
  {
    name: "an entry is returned through its grace window (after expiresAt) until its staleUntil, and not after",
    run: (tier, live) =>
      Effect.gen(function* () {
        const [viaSet, viaSetMany, gone] = [freshKey("grace"), freshKey("grace"), freshKey("gone")]
        const written = yield* Clock.currentTimeMillis
        // Live: 100 ms fresh, then 900 ms of grace, read at 300 and at 1,400 ms (margins for a slow host).
        const [ttlMs, graceMs, inGrace, after] = live ? [100, 900, 300, 1_400] : [1_000, 1_000, 1_999, 2_000]
        const entry = Entry.make({ value: "stale", now: written, ttlMs, graceMs })
        yield* tier.set(viaSet, entry)
        yield* tier.setMany([[viaSetMany, entry]])
        // Written already past its staleUntil: never returned.
        yield* tier.set(gone, Entry.make({ value: "gone", now: written - 2_000, ttlMs: 1_000, graceMs: 500 }))
        const at = (ms: number) =>
          live
            ? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, written + ms - now)))
            : Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(written + ms - now))
        const read = Effect.map(
          Effect.all([tier.get(viaSet), tier.get(viaSetMany), valuesOf(tier, [viaSet, viaSetMany, gone])]),
          ([one, two, many]) => [Option.map(one, (e) => e.value), Option.map(two, (e) => e.value), ...many]
        )
        const stale = Option.some("stale")
        yield* at(inGrace)
        expect(yield* read).toEqual([stale, stale, stale, stale, Option.none()])
        yield* at(after)
        expect(yield* read).toEqual(Array.from({ length: 5 }, () => Option.none()))
      })
  },
  {
    name: "writeIfNewer, when the tier has it, applies each change unless the key holds an entry created after it",
    run: (tier) =>
      Effect.gen(function* () {
        const writeIfNewer = tier.writeIfNewer
        if (writeIfNewer === undefined) return
        const now = yield* Clock.currentTimeMillis
        const [older, absent, same, keep, drop] = Array.from({ length: 5 }, () => freshKey("ifNewer"))
        // Created at `now` exactly: on a live clock a millisecond may pass before the fill.
        yield* fill(tier, [older!, same!, keep!, drop!], now)
        const change = (key: string, at: number, removal = false): Tier.Tier.Change => ({
          key,
          at,
          entry: removal ? undefined : Entry.make({ value: "changed", now: at, ttlMs: 60_000 })
        })
        const applied = yield* writeIfNewer([
          change(older!, now - 10),
          change(absent!, now - 10),
          change(same!, now),
          change(keep!, now - 1, true),
          change(drop!, now + 1, true)
        ])
        expect(applied).toEqual([false, true, true, false, true])
        expect(yield* valuesOf(tier, [older!, absent!, same!, keep!, drop!])).toEqual([
          Option.some(older),
          Option.some("changed"),
          Option.some("changed"),
          Option.some(keep),
          Option.none()
        ])
      })
  },
  {
    name: "setThen, when the tier has it, writes as set does and runs then once, answering no error and then's result",
    run: (tier) =>
      Effect.gen(function* () {
        const setThen = tier.setThen
        if (setThen === undefined) return
        const now = yield* Clock.currentTimeMillis
        const key = freshKey("setThen")
        let ran = 0
        const answer = yield* setThen(
          key,
          Entry.make({ value: [1, "two"], now, ttlMs: 60_000 }),
          Effect.sync(() => ++ran)
        )
        expect([answer, ran]).toEqual([[undefined, 1], 1])
        expect(yield* valuesOf(tier, [key])).toEqual([Option.some([1, "two"])])
      })
  },
  {
    name: "health of a tier that answers: healthy, under the tier's name",
    run: (tier) =>
      Effect.map(tier.health, (health) => expect([health.name, health.healthy]).toEqual([tier.name, true]))
  }
]

/** Registers the checks with `it` (from `layer(...)` of @effect/vitest), each on a fresh tier. */
export const registerTierContractTests = <R>(
  it: Vitest.MethodsNonLive<R, boolean>,
  { instances, live }: Context<R>
): void => {
  for (const check of checks) {
    it.scoped(check.name, () => Effect.flatMap(instances(1), ({ l2 }) => check.run(l2, live)))
  }
}
