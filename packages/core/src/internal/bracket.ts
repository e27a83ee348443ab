/**
 * A mark set before an effect and cleared after it, however it ends. The mark is set in the
 * same step that makes the fiber uninterruptible, so no interruption can come between setting
 * it and the region that clears it.
 *
 * `Effect.suspend(() => { mark(); return Effect.ensuring(body, clear) })` has that gap: the
 * fiber may yield (every 2,048 steps) or take an interruption after the suspend and before
 * ensuring's region begins, and the mark then stays forever. A change's "changing" mark left
 * that way kept its key (or, for a pattern, tag or clear, every key) from ever being cached
 * again; a breaker's probe flag left set refused its tier for good.
 */
import { type Cause, Effect } from "effect"

/**
 * Runs `begin()`, then `body` of what it answered (interruptible as the caller is), then `end`
 * of it however `body` ends: success, failure or interruption (`end` is given the cause of a
 * failure or interruption). `begin` and `end` run in the uninterruptible region, and must not
 * throw; `begin` may decline by answering a state that `body` and `end` treat as nothing to do.
 */
export const bracketSync = <S, A, E, R>(
  begin: () => S,
  body: (state: S) => Effect.Effect<A, E, R>,
  end: (state: S, cause?: Cause.Cause<E>) => void
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) => {
    const state = begin()
    return Effect.matchCauseEffect(restore(body(state)), {
      onFailure: (cause) => {
        end(state, cause)
        return Effect.failCause(cause)
      },
      onSuccess: (value) => {
        end(state)
        return Effect.succeed(value)
      }
    })
  })
