/**
 * The test of `TierSuite.run` for a tier called directly with bad arguments, as from plain
 * JavaScript (see `Tier.withInputChecks`): each call fails with a TierError of its operation
 * whose reason names the argument, and nothing is written, no batch in part.
 *
 * @internal
 */
import { expect, type Vitest } from "@effect/vitest"
import { Entry, type Tier } from "@tiercache/core"
import { Cause, Clock, Effect, Exit, Option } from "effect"
import { type Context, freshKey } from "./suiteContext.js"

// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const js = (u: unknown): any => u

/** A call that must be refused: what it shows as, its operation, a part of its reason, the call. */
type BadCall = readonly [
  label: string,
  operation: string,
  reason: string,
  call: () => Effect.Effect<unknown, unknown>
]

/**
 * The bad calls of `tier`: `key` holds an entry that must stay, `fresh` a key that must stay
 * unwritten (the good member of each refused batch), `entry` a good entry.
 */
const badCalls = (tier: Tier.Tier.Service, key: string, fresh: string, entry: Entry.Entry, now: number) => {
  const calls: Array<BadCall> = [
    ["get(42)", "get", "key must be a string, got 42", () => tier.get(js(42))],
    ["get(undefined)", "get", "key must be a string, got undefined", () => tier.get(js(undefined))],
    ["getMany(null)", "getMany", "keys must be an array", () => tier.getMany(js(null))],
    ["getMany([key, 1])", "getMany", "keys[1] must be a string", () => tier.getMany(js([key, 1]))],
    ["set(42, entry)", "set", "key must be a string, got 42", () => tier.set(js(42), entry)],
    ["set(undefined, entry)", "set", "key must be a string", () => tier.set(js(undefined), entry)],
    ["set({}, entry)", "set", "key must be a string", () => tier.set(js({}), entry)],
    ["set(null, entry)", "set", "key must be a string", () => tier.set(js(null), entry)],
    ["set(key, null)", "set", "entry must be an Entry", () => tier.set(key, js(null))],
    [
      "set(key, no createdAt)",
      "set",
      "entry.createdAt must be a finite number",
      () => tier.set(key, js({ ...entry, createdAt: undefined }))
    ],
    [
      "set(key, no staleUntil)",
      "set",
      "entry.staleUntil must be a finite number",
      () => tier.set(key, js({ value: 1, expiresAt: entry.expiresAt, tags: [], createdAt: now }))
    ],
    [
      "set(key, NaN expiresAt)",
      "set",
      "entry.expiresAt must be a finite number",
      () => tier.set(key, js({ ...entry, expiresAt: Number.NaN }))
    ],
    [
      "set(key, staleUntil < expiresAt)",
      "set",
      "entry.staleUntil must not be before",
      () => tier.set(key, js({ ...entry, expiresAt: entry.staleUntil + 1 }))
    ],
    [
      "set(key, tags [1])",
      "set",
      "entry.tags[0] must be a string",
      () => tier.set(key, js({ ...entry, tags: [1] }))
    ],
    [
      "set(key, tags null)",
      "set",
      "entry.tags must be an array",
      () => tier.set(key, js({ ...entry, tags: null }))
    ],
    [
      "set(key, value undefined)",
      "set",
      "entry.value is undefined",
      () => tier.set(key, js({ ...entry, value: undefined }))
    ],
    [
      "set(key, value { at: 1n })",
      "set",
      "entry.value.at is a bigint",
      () => tier.set(key, js({ ...entry, value: { at: 1n } }))
    ],
    [
      "set(key, value a Date)",
      "set",
      "entry.value is a Date",
      () => tier.set(key, js({ ...entry, value: new Date(0) }))
    ],
    ["setMany(null)", "setMany", "entries must be an array", () => tier.setMany(js(null))],
    [
      "setMany([[fresh, entry], [key]])",
      "setMany",
      "entries[1][1] must be an Entry",
      () => tier.setMany(js([[fresh, entry], [key]]))
    ],
    [
      "setMany([[fresh, entry], [1, entry]])",
      "setMany",
      "entries[1][0] must be a string",
      () =>
        tier.setMany(
          js([
            [fresh, entry],
            [1, entry]
          ])
        )
    ],
    [
      "setMany([[fresh, entry], null])",
      "setMany",
      "entries[1] must be a [key, entry] pair",
      () => tier.setMany(js([[fresh, entry], null]))
    ],
    [
      "setMany([[fresh, entry], [key, NaN times]])",
      "setMany",
      "entries[1][1].expiresAt",
      () =>
        tier.setMany(
          js([
            [fresh, entry],
            [key, { ...entry, expiresAt: Number.NaN }]
          ])
        )
    ],
    ["remove(null)", "remove", "keys must be an array", () => tier.remove(js(null))],
    ["remove('abc')", "remove", "keys must be an array", () => tier.remove(js("abc"))],
    ["remove([key, null])", "remove", "keys[1] must be a string", () => tier.remove(js([key, null]))],
    [
      "removeMatching(undefined)",
      "removeMatching",
      "glob must be a string, got undefined",
      () => tier.removeMatching(js(undefined))
    ],
    [
      "removeMatching(null)",
      "removeMatching",
      "glob must be a string, got null",
      () => tier.removeMatching(js(null))
    ]
  ]
  const writeIfNewer = tier.writeIfNewer
  if (writeIfNewer !== undefined) {
    calls.push(
      ["writeIfNewer(null)", "writeIfNewer", "changes must be an array", () => writeIfNewer(js(null))],
      [
        "writeIfNewer(no at)",
        "writeIfNewer",
        "changes[0].at must be a finite number",
        () => writeIfNewer(js([{ key: fresh, entry }]))
      ],
      [
        "writeIfNewer(at NaN)",
        "writeIfNewer",
        "changes[0].at must be a finite number",
        () => writeIfNewer(js([{ key: fresh, entry, at: Number.NaN }]))
      ],
      [
        "writeIfNewer(key 1)",
        "writeIfNewer",
        "changes[1].key must be a string",
        () =>
          writeIfNewer(
            js([
              { key: fresh, entry, at: now },
              { key: 1, entry, at: now }
            ])
          )
      ],
      [
        "writeIfNewer(entry not an Entry)",
        "writeIfNewer",
        "changes[0].entry.expiresAt",
        () => writeIfNewer(js([{ key: fresh, entry: { value: 1 }, at: now }]))
      ],
      [
        "writeIfNewer(removal, null)",
        "writeIfNewer",
        "changes[1] must be a change",
        () => writeIfNewer(js([{ key, entry: undefined, at: now + 1 }, null]))
      ]
    )
  }
  return calls
}

/** Registers the test with `it` (from `layer(...)` of @effect/vitest). */
export const registerInputTests = <R>(
  it: Vitest.MethodsNonLive<R, boolean>,
  { instances }: Context<R>
): void => {
  it.scoped(
    "a tier called with bad arguments (plain JS) fails with a TierError naming them; nothing is written",
    () =>
      Effect.gen(function* () {
        const { l2 } = yield* instances(1)
        const now = yield* Clock.currentTimeMillis
        const key = freshKey("input")
        const fresh = `${key}:fresh`
        yield* l2.set(key, Entry.make({ value: "kept", now, ttlMs: 60_000 }))
        const entry = Entry.make({ value: "other", now, ttlMs: 60_000 })
        for (const [label, operation, reason, call] of badCalls(l2, key, fresh, entry, now)) {
          // Before: a defect (a TypeError thrown in the tier), a miss, or a write of a junk key.
          const exit = yield* Effect.exit(Effect.suspend(call))
          const error = Exit.isFailure(exit)
            ? Option.getOrUndefined(Cause.failureOption(exit.cause))
            : undefined
          const seen = error as { _tag?: string; operation?: string; reason?: string } | undefined
          expect([label, seen?._tag, seen?.operation, seen?.reason?.includes(reason)]).toEqual([
            label,
            "TierError",
            operation,
            true
          ])
        }
        const setThen = l2.setThen
        if (setThen !== undefined) {
          let ran = 0
          const [error, a] = yield* setThen(
            key,
            js(null),
            Effect.sync(() => ++ran)
          )
          expect([error?._tag, error?.operation, a, ran]).toEqual(["TierError", "set", 1, 1])
        }
        const removeThen = l2.removeThen
        if (removeThen !== undefined) {
          // A bad list removes nothing, not even its good member (`key` stays), and runs `then` once.
          let ran = 0
          for (const keys of [js(null), js([key, 1]), js("not a list")]) {
            const [error, a] = yield* removeThen(
              keys,
              Effect.sync(() => ++ran)
            )
            expect([error?._tag, error?.operation, a]).toEqual(["TierError", "remove", ran])
          }
          expect(ran).toBe(3)
        }
        const removeNow = l2.removeNow
        if (removeNow !== undefined) {
          // Not started, nothing removed, `done` never called.
          let done = 0
          for (const keys of [js(null), js([key, 1]), js("not a list")])
            expect(removeNow(keys, () => done++)).toBe(false)
          // Real time (the test may run on a TestClock): a late `done` would come within it.
          yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))
          expect(done).toBe(0)
        }
        // Nothing written: the entry of `key` is the one set first, `fresh` (the good member of
        // each refused batch) is absent, and so are the keys a bad key reads as in text.
        const after = yield* l2.getMany([key, fresh, "42", "undefined", "null", "1", "[object Object]"])
        expect(after.map(Option.map((e) => e.value))).toEqual([
          Option.some("kept"),
          ...Array.from({ length: 6 }, () => Option.none())
        ])
      })
  )
}
