/**
 * Operations on every tier at once (writes and removals): L1 first, then the tiers below it,
 * each failure counted and logged; the shape of one lower tier is chosen once, and so is the
 * write or removal that sends a bus message along with it (`setThen`, `removeThen`, see Tier's
 * `sequence`).
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import type { Tier } from "../Tier.js"

/**
 * An operation on L1, called when the write runs: it answers the Effect that does it, or does
 * it at once and answers undefined (a MemoryTier's fast path, which cannot fail: no Effect step).
 */
export type L1Op = () => Effect.Effect<void, TierError> | undefined

/** The operations on every tier. */
export interface EveryTier {
  /**
   * Runs an operation on L1 first, then (after `afterL1`) on every lower tier at once;
   * answers the failures, each counted and logged.
   */
  readonly onEveryTier: (
    l1Op: L1Op,
    lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>,
    afterL1?: () => void
  ) => Effect.Effect<ReadonlyArray<TierError>>
  /**
   * With one lower tier that sends a write and a bus message together (`setThen`): the ordered
   * stream it names, and `onEveryTier` for a write of `entry` that runs `then` (the message) once
   * the lower write is sent; answers the failures and `then`'s result.
   */
  readonly storeThen:
    | {
        readonly sequence: unknown
        readonly run: <A>(
          l1Op: L1Op,
          key: string,
          entry: Entry.Entry,
          then: Effect.Effect<A>,
          afterL1?: () => void
        ) => Effect.Effect<readonly [ReadonlyArray<TierError>, A]>
      }
    | undefined
  /**
   * The same for a removal of `keys` (`removeThen`): `onEveryTier` for it that runs `then` (the
   * messages) once the lower removal is sent; answers the failures and `then`'s result.
   */
  readonly removeThen:
    | {
        readonly sequence: unknown
        readonly run: <A>(
          l1Op: L1Op,
          keys: ReadonlyArray<string>,
          then: Effect.Effect<A>
        ) => Effect.Effect<readonly [ReadonlyArray<TierError>, A]>
      }
    | undefined
}

/** Builds `onEveryTier`, `storeThen` and `removeThen` over the lower tiers (guarded, traced). */
export const make = (
  lower: ReadonlyArray<Tier.Service>,
  recordError: (index: number, error: TierError) => Effect.Effect<void>
): EveryTier => {
  const noFailures: ReadonlyArray<TierError> = []
  /**
   * When run: `l1Op` (its failure counted and logged), then `rest` with the failures so far
   * (`rest` is only ever called while the write runs).
   */
  const l1First = <B>(
    l1Op: L1Op,
    rest: (failures: ReadonlyArray<TierError>) => Effect.Effect<B>
  ): Effect.Effect<B> =>
    Effect.suspend(() => {
      const op = l1Op()
      if (op === undefined) return rest(noFailures)
      return Effect.matchEffect(op, {
        onFailure: (error) => Effect.zipRight(recordError(0, error), rest([error])),
        onSuccess: () => rest(noFailures)
      })
    })
  /** The usual shape, one lower tier: chosen once here, a few Effect steps per write. */
  const onL1AndOne = (only: Tier.Service): EveryTier["onEveryTier"] => {
    const lowerAfter = (
      lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>,
      afterL1: (() => void) | undefined,
      failures: ReadonlyArray<TierError>
    ) => {
      afterL1?.()
      return Effect.matchEffect(lowerOp(only), {
        onFailure: (error) => Effect.as(recordError(1, error), [...failures, error]),
        onSuccess: () => Effect.succeed(failures)
      })
    }
    return (l1Op, lowerOp, afterL1) => l1First(l1Op, (failures) => lowerAfter(lowerOp, afterL1, failures))
  }

  // Several lower tiers are written at once.
  const onEveryTier: EveryTier["onEveryTier"] =
    lower.length === 1
      ? onL1AndOne(lower[0]!)
      : (l1Op, lowerOp, afterL1) =>
          Effect.gen(function* () {
            const failures: Array<TierError> = []
            const op = l1Op()
            const first = op === undefined ? undefined : yield* Effect.either(op)
            if (first?._tag === "Left") {
              yield* recordError(0, first.left)
              failures.push(first.left)
            }
            afterL1?.()
            const rest = yield* Effect.forEach(
              lower,
              (tier, i) =>
                lowerOp(tier).pipe(
                  Effect.as(undefined),
                  Effect.catchAll((error) => Effect.as(recordError(i + 1, error), error))
                ),
              { concurrency: "unbounded" }
            )
            for (const r of rest) if (r !== undefined) failures.push(r)
            return failures
          })

  const only = lower.length === 1 ? lower[0]! : undefined
  /**
   * `l1Op`, then `start(then)` on the one lower tier (after `afterL1`): a call that runs `then`
   * once its command is sent; its failure counted and logged beside L1's.
   */
  const ordered = <A>(
    l1Op: L1Op,
    start: (then: Effect.Effect<A>) => Effect.Effect<readonly [TierError | undefined, A]>,
    then: Effect.Effect<A>,
    afterL1?: () => void
  ): Effect.Effect<readonly [ReadonlyArray<TierError>, A]> =>
    l1First(l1Op, (failures) => {
      afterL1?.()
      return Effect.flatMap(start(then), ([error, value]) =>
        error === undefined
          ? Effect.succeed([failures, value] as const)
          : Effect.as(recordError(1, error), [[...failures, error], value] as const)
      )
    })
  const setThen = only?.sequence === undefined ? undefined : only.setThen
  const storeThen: EveryTier["storeThen"] =
    setThen === undefined
      ? undefined
      : {
          sequence: only!.sequence,
          run: (l1Op, key, entry, then, afterL1) =>
            ordered(l1Op, (t) => setThen(key, entry, t), then, afterL1)
        }
  const dropThen = only?.sequence === undefined ? undefined : only.removeThen
  const removeThen: EveryTier["removeThen"] =
    dropThen === undefined
      ? undefined
      : { sequence: only!.sequence, run: (l1Op, keys, then) => ordered(l1Op, (t) => dropThen(keys, t), then) }

  return { onEveryTier, storeThen, removeThen }
}
