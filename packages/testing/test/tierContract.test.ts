/**
 * The tier suite's checks of the tier itself (internal/tierContractTests.ts) fail a tier that
 * breaks the obligation each checks: each broken tier here is a TestTier with one operation made
 * wrong, as a tier of a user's might be.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Tier } from "@tiercache/core"
import { Cause, Clock, Effect, Exit, Option } from "effect"
import { TestTier } from "../src/index.js"
import { checks } from "../src/internal/tierContractTests.js"

type Break = (tier: Tier.Tier.Service) => Tier.Tier.Service

/** The check named starting with `name`, and the tiers that break it. */
const broken: ReadonlyArray<readonly [name: string, label: string, breaks: Break]> = [
  [
    "remove removes",
    "removes only the first key",
    (t) => ({ ...t, remove: (keys) => t.remove(keys.slice(0, 1)) })
  ],
  [
    "removeMatching removes",
    "answers 0",
    (t) => ({ ...t, removeMatching: (glob) => Effect.as(t.removeMatching(glob), 0) })
  ],
  [
    "removeMatching removes",
    "drops the glob's escapes",
    (t) => ({ ...t, removeMatching: (glob) => t.removeMatching(glob.replaceAll("\\", "")) })
  ],
  ["clear removes", "clears nothing", (t) => ({ ...t, clear: Effect.void })],
  [
    "getMany answers",
    "answers a repeated key once",
    (t) => ({ ...t, getMany: (keys) => t.getMany([...new Set(keys)]) })
  ],
  [
    "an entry is returned through its grace window",
    "drops an entry at its expiresAt",
    (t) => ({
      ...t,
      get: (key) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.map(
            t.get(key),
            Option.filter((e) => now < e.expiresAt)
          )
        )
    })
  ],
  [
    "an entry is returned through its grace window",
    "ends setMany's entries at their expiresAt",
    (t) => ({
      ...t,
      setMany: (entries) =>
        t.setMany(entries.map(([key, e]) => [key, { ...e, staleUntil: e.expiresAt }] as const))
    })
  ],
  [
    "an entry is returned through its grace window",
    "keeps an entry written already gone for a minute",
    (t) => ({
      ...t,
      set: (key, e) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          t.set(key, e.staleUntil > now ? e : { ...e, expiresAt: now + 60_000, staleUntil: now + 60_000 })
        )
    })
  ],
  [
    "writeIfNewer",
    "writes every change",
    (t) => ({
      ...t,
      writeIfNewer: (changes) =>
        Effect.forEach(changes, (c) => Effect.as(c.entry ? t.set(c.key, c.entry) : t.remove([c.key]), true))
    })
  ],
  [
    "setThen",
    "does not write",
    (t) => ({ ...t, setThen: (_key, _entry, then) => Effect.map(then, (a) => [undefined, a] as const) })
  ],
  [
    "health of a tier",
    "answers another name",
    (t) => ({ ...t, health: Effect.succeed({ name: "other", healthy: true }) })
  ]
]

describe("the tier suite's checks of the tier itself", () => {
  it.effect("TestTier passes each", () =>
    Effect.gen(function* () {
      for (const check of checks) yield* check.run(yield* TestTier.make(), false)
    })
  )

  for (const [name, label, breaks] of broken) {
    it.effect(`${name}...: a tier that ${label} fails it`, () =>
      Effect.gen(function* () {
        const matching = checks.filter((c) => c.name.startsWith(name))
        expect(matching.length).toBe(1)
        const exit = yield* Effect.exit(matching[0]!.run(breaks(yield* TestTier.make()), false))
        // Failed by an assertion of the check (a defect), not by the tier.
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        expect((defect as Error | undefined)?.name).toBe("AssertionError")
      })
    )
  }
})
