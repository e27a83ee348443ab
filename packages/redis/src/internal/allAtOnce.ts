/**
 * Calls made at once without Effect's concurrent forEach (`Effect.all` with `concurrency`): a
 * few fibers forked from the caller's take the items one after another, and the caller joins
 * them in turn. Effect 3.22's concurrent forEach never ends when the fiber running it is
 * interrupted while it yields inside forEach's own uninterruptible steps (a fiber yields every
 * 2,048 steps by default), so a caller of RedisTier's `setMany` or `writeIfNewer` cut at that
 * step hung for good. A forked fiber is interrupted with its parent, as any child is.
 */
import { Effect, Exit, Fiber } from "effect"

/**
 * `f` of every item, at most `concurrency` at a time; the answers in the items' order. After a
 * failure no item is started; the calls under way end first, then the first failure (in the
 * order the fibers are joined) is the answer.
 */
export const forEachAtOnce = <A, B, E>(
  items: ReadonlyArray<A>,
  f: (item: A) => Effect.Effect<B, E>,
  concurrency = Number.POSITIVE_INFINITY
): Effect.Effect<Array<B>, E> =>
  Effect.suspend(() => {
    const answers = new Array<B>(items.length)
    let next = 0
    let failed = false
    const worker: Effect.Effect<void, E> = Effect.gen(function* () {
      while (next < items.length && !failed) {
        const i = next++
        const exit = yield* Effect.exit(f(items[i]!))
        if (Exit.isFailure(exit)) {
          failed = true
          return yield* Effect.failCause(exit.cause)
        }
        answers[i] = exit.value
      }
    })
    const workers = Math.min(concurrency, items.length)
    return Effect.flatMap(
      Effect.forEach(Array.from({ length: workers }), () => Effect.fork(worker)),
      (fibers) =>
        Effect.flatMap(
          Effect.forEach(fibers, (fiber) => Effect.exit(Fiber.join(fiber))),
          (exits): Effect.Effect<Array<B>, E> => {
            const failure = exits.find(Exit.isFailure)
            return failure === undefined ? Effect.succeed(answers) : Effect.failCause(failure.cause)
          }
        )
    )
  })
