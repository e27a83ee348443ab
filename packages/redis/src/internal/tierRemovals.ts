/**
 * RedisTier's removals of keys: `remove` in UNLINKs of at most REMOVE_CHUNK keys, one after the
 * other; `removeThen` and `removeNow` hand one UNLINK to the command connection before the bus
 * message that follows it (corked, the two leave in one script call: corkedSend.ts).
 *
 * Order: a removal of a key whose large write is still in flight waits for it to land before it
 * is sent (keyOrder.ts, the order the tier's writes keep too), so that the large value does not
 * land after it; a wait that outlasts the large write's bounds fails unsent.
 */
import type { CacheError, Tier } from "@tiercache/core"
import { Effect } from "effect"
import type { Redis } from "ioredis"
import type { Send } from "./corkedSend.js"
import type { KeyOrder } from "./keyOrder.js"
import { failureOf, type Runner, sendThen } from "./tierRunner.js"

type TierError = CacheError.TierError

/** Most keys in one UNLINK. */
export const REMOVE_CHUNK = 1000

/** What the removals of one tier are built on. */
export interface Deps {
  /** The command connection's client. */
  readonly client: Redis
  /** The tier's key prefix. */
  readonly prefix: string
  /** The order of the tier's writes and removals of a key (shared with its writes). */
  readonly order: KeyOrder
  readonly runner: Runner
  /** The command connection's corked sender (corkedSend.ts). */
  readonly send: Send
  /** The failure of a removal not sent: an earlier large write of a key has not landed in time. */
  readonly notLanded: Effect.Effect<never, TierError>
}

/** Builds the removals of a tier. */
export const make = ({
  client,
  prefix,
  order,
  runner,
  send,
  notLanded
}: Deps): Pick<Tier.Tier.Service, "remove"> & {
  readonly removeThen: NonNullable<Tier.Tier.Service["removeThen"]>
  readonly removeNow: NonNullable<Tier.Tier.Service["removeNow"]>
} => {
  const { run } = runner

  /**
   * UNLINK of `full`, in commands of at most REMOVE_CHUNK keys, one after the other: each is
   * bounded by the command timeout as a lone one is (as getMany's chunks are), so that a removal
   * of many keys never fails on its size alone (a pipeline of them all, bounded as a whole,
   * failed 200,000 keys on a healthy Redis, counted against the breaker and kept for replay).
   */
  const unlink = (full: ReadonlyArray<string>): Effect.Effect<void, TierError> =>
    full.length <= REMOVE_CHUNK
      ? Effect.asVoid(run("remove", () => client.unlink(...full)))
      : Effect.gen(function* () {
          for (let i = 0; i < full.length; i += REMOVE_CHUNK) {
            const chunk = full.slice(i, i + REMOVE_CHUNK)
            yield* run("remove", () => client.unlink(...chunk))
          }
        })

  /** Whether the removal of `full` can be one UNLINK handed to the connection now. */
  const atOnce = (full: ReadonlyArray<string>): boolean =>
    full.length > 0 && full.length <= REMOVE_CHUNK && !order.waitsAny(full)

  /** The UNLINK of `full` handed to the command connection now (corked); answers its failure. */
  const unlinkNow = (full: Array<string>): Promise<TierError | undefined> =>
    runner.now("remove", () => send("unlink", full, () => client.unlink(...full)))

  const remove = (keys: ReadonlyArray<string>): Effect.Effect<void, TierError> =>
    Effect.suspend(() => {
      if (keys.length === 0) return Effect.void
      const full = keys.map((key) => prefix + key)
      return order.waitsAny(full) ? order.after(full, () => unlink(full), notLanded) : unlink(full)
    })

  return {
    remove,

    /**
     * `remove`, then `then` without waiting for the reply in between: an UNLINK of at most
     * REMOVE_CHUNK keys is handed to the command connection first, so a PUBLISH that `then`
     * sends on it follows the removal. More keys (UNLINKs one after the other), or a key whose
     * earlier large write must land first (keyOrder.ts): `then` runs once the removal is
     * answered.
     */
    removeThen: <A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) =>
      Effect.suspend((): Effect.Effect<readonly [TierError | undefined, A]> => {
        const full = keys.map((key) => prefix + key)
        if (!atOnce(full)) {
          return Effect.flatMap(failureOf(remove(keys)), (error) =>
            Effect.map(then, (a) => [error, a] as const)
          )
        }
        return sendThen(() => unlinkNow(full), then)
      }),

    /**
     * `removeThen`'s removal started at once (the cache's one-step invalidate): the UNLINK is on
     * the command connection when it returns. Anything else is not started (false): no keys,
     * more than one UNLINK takes, or a key behind an earlier large write of it.
     */
    removeNow: (keys, done) => {
      const full = keys.map((key) => prefix + key)
      if (!atOnce(full)) return false
      unlinkNow(full).then(done)
      return true
    }
  }
}
