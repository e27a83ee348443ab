/**
 * What the tests of the tier suite share.
 *
 * @internal
 */
import type { Tier, TieredCache } from "@tiercache/core"
import type { Effect, Scope } from "effect"
import type * as TestBus from "../TestBus.js"

/** What each test gets: cache instances over a fresh tier, and whether time is real. */
export interface Context<R> {
  /** `n` instances sharing a fresh tier (as L2) and an in-memory bus, built in the test's scope. */
  readonly instances: (
    n?: number,
    cache?: TieredCache.Options
  ) => Effect.Effect<
    {
      readonly caches: ReadonlyArray<TieredCache.TieredCache.Service>
      readonly l2: Tier.Tier.Service
      readonly hub: TestBus.Hub
      readonly settle: Effect.Effect<void>
    },
    unknown,
    Scope.Scope | R
  >
  /** The tier expires entries by itself on the real clock (the TestClock cannot drive it). */
  readonly live: boolean
}

let counter = 0
/** A key no other test (or earlier run on a shared server) used. */
export const freshKey = (name: string): string => `${name}:${Date.now().toString(36)}:${++counter}`
