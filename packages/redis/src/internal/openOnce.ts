/**
 * A connection opened on first use and kept: the open runs in a fiber of the layer's scope,
 * which the uses await, so it runs to its end even when the use that started it gives up (is
 * interrupted, or its time runs out), and its connection is kept for the next use, never one
 * left open beside it. A failed open is not kept: the next use tries again. Interrupted only when
 * the layer closes, or never run when the layer has closed already: its waiters then fail with
 * `closed()` (a fiber forked into a closed scope is interrupted before it runs, so nothing of
 * the open itself would tell them).
 */
import { Cause, Deferred, Effect, Exit, Option, type Scope, SynchronizedRef } from "effect"

/** Answers the effect that gives the connection `open` makes (in `scope`), opening it once. */
export const openOnce = <A, E>(
  open: Effect.Effect<A, E>,
  scope: Scope.Scope,
  closed: () => E
): Effect.Effect<Effect.Effect<A, E>> =>
  Effect.map(SynchronizedRef.make(Option.none<Deferred.Deferred<A, E>>()), (ref) => {
    const run = (opening: Deferred.Deferred<A, E>) =>
      open.pipe(
        Effect.tapError(() =>
          SynchronizedRef.update(ref, (current) =>
            Option.isSome(current) && current.value === opening ? Option.none() : current
          )
        )
      )
    // Uninterruptible between the fork and the storing of its Deferred: no open goes unrecorded.
    return SynchronizedRef.modifyEffect(ref, (current) =>
      Option.match(current, {
        onSome: (opening) => Effect.succeed([opening, current] as const),
        onNone: () =>
          Effect.gen(function* () {
            const opening = yield* Deferred.make<A, E>()
            const fiber = yield* Effect.forkIn(Effect.interruptible(run(opening)), scope)
            // However the fiber ends, even interrupted before it ran.
            fiber.addObserver((exit) =>
              Deferred.unsafeDone(
                opening,
                Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? Exit.fail(closed()) : exit
              )
            )
            return [opening, Option.some(opening)] as const
          })
      })
    ).pipe(Effect.uninterruptible, Effect.flatMap(Deferred.await))
  })
