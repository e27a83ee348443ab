/**
 * The fibers that run flights: each started at once in the caller's step, with the caller's
 * context and fiber refs, owned by the cache rather than the caller (it outlives the caller),
 * kept in a live set so that the cache's close interrupts them and `stats.inFlight` counts them.
 */
import {
  type Context,
  Effect,
  type Exit,
  Fiber,
  type FiberRefs,
  type FiberStatus,
  Runtime,
  RuntimeFlags
} from "effect"

/** The flight fibers of one cache. */
export interface FlightFibers {
  /**
   * Starts `body` at once, in a fiber of its own with the caller's context and fiber refs, or
   * `fiberRefs` when given (interruptible whatever the caller's region); `done` runs however it
   * ends. Once the cache is closing, the fiber is interrupted at once.
   */
  readonly launch: <A, E, R>(
    caller: Fiber.RuntimeFiber<unknown, unknown>,
    status: FiberStatus.Running,
    body: Effect.Effect<A, E, R>,
    done: (exit: Exit.Exit<A, E>) => void,
    fiberRefs?: FiberRefs.FiberRefs
  ) => Fiber.RuntimeFiber<A, E>
  /** Interrupts every fiber still running, and every one launched later (the cache is closing). */
  readonly interruptAll: Effect.Effect<void>
  /** How many are running (a detached flight's included). */
  readonly underWay: () => number
}

/** No flight fibers yet. */
export const make = (): FlightFibers => {
  const live = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  let closed = false
  return {
    launch: <A, E, R>(
      caller: Fiber.RuntimeFiber<unknown, unknown>,
      status: FiberStatus.Running,
      body: Effect.Effect<A, E, R>,
      done: (exit: Exit.Exit<A, E>) => void,
      fiberRefs?: FiberRefs.FiberRefs
    ): Fiber.RuntimeFiber<A, E> => {
      const runtime = Runtime.make({
        context: caller.currentContext as Context.Context<R>,
        fiberRefs: fiberRefs ?? caller.getFiberRefs(),
        runtimeFlags: RuntimeFlags.enable(status.runtimeFlags, RuntimeFlags.Interruption)
      })
      const fiber = Runtime.runFork(runtime)(closed ? Effect.interrupt : body)
      live.add(fiber)
      fiber.addObserver((exit) => {
        live.delete(fiber)
        done(exit)
      })
      return fiber
    },
    interruptAll: Effect.suspend(() => {
      closed = true
      return Effect.forEach([...live], (fiber) => Fiber.interrupt(fiber), { discard: true })
    }),
    underWay: () => live.size
  }
}
