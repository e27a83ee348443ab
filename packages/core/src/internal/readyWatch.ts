/**
 * A lower tier's `ready` stream, watched in a fiber of the cache's scope: each signal runs the
 * recovery's `onReady` (probe the breakers, replay). A stream that ends while the cache lives (it
 * failed, died, interrupted itself, or completed) is logged at Error level and run again, as
 * busSubscriber.ts subscribes again: the tier's later reconnections would otherwise go unheard,
 * silently.
 */
import { Cause, Effect, Exit, type Scope, Stream } from "effect"
import { rerunDelay } from "./rerunDelay.js"

/**
 * Runs `ready` in a fiber of the current scope, `onReady` on each signal, run again when it ends;
 * `tier` (its label) and `cacheName` name it in the log lines.
 */
export const watch = (
  ready: Stream.Stream<void>,
  onReady: Effect.Effect<void>,
  tier: string,
  cacheName: string
): Effect.Effect<void, never, Scope.Scope> => {
  const run = (attempt: number): Effect.Effect<void> => {
    let heard = false
    return Stream.runForEach(
      Stream.suspend(() => ready),
      () => {
        heard = true
        return onReady
      }
    ).pipe(
      Effect.exit,
      Effect.flatMap((exit) => ended(exit, heard ? 1 : attempt + 1))
    )
  }
  const ended = (exit: Exit.Exit<void>, attempt: number): Effect.Effect<void> => {
    // Not reached when the cache's scope interrupts this fiber (an interrupted fiber runs no
    // handler): an interruption here is the stream's own, an end as any other.
    const how = Exit.isFailure(exit) ? "it failed, died or was interrupted" : "it completed"
    return Effect.logError(
      `tiercache: the ready stream of tier ${tier} ended (${how}); running it again`,
      Exit.isFailure(exit) ? exit.cause : Cause.empty
    ).pipe(
      Effect.annotateLogs({ cache: cacheName }),
      Effect.zipRight(Effect.sleep(rerunDelay(attempt))),
      Effect.zipRight(Effect.suspend(() => run(attempt)))
    )
  }
  return Effect.asVoid(Effect.forkScoped(run(0)))
}
