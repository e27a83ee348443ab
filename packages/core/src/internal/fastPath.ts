import { Exit, Option } from "effect"
import type { Entry } from "../Entry.js"

/** @internal */
export const FastPathTypeId: unique symbol = Symbol.for("@tiercache/core/MemoryTier/FastPath")

/**
 * What L1 keeps per key: the entry plus the answers a hit returns, built once when stored so
 * that a hit allocates nothing. `typed*` memoize the decoding under the last schema used.
 *
 * @internal
 */
export interface Slot {
  readonly entry: Entry
  /** `Exit.succeed(Option.some(entry.value))`, returned as is by an untyped hit. */
  readonly some: Exit.Exit<Option.Option<unknown>>
  /** The schema the typed answer was decoded with. */
  typedSchema: unknown
  /** `Exit.succeed(Option.some(decoded))` for `typedSchema`. */
  typedSome: Exit.Exit<Option.Option<unknown>> | undefined
  /** The decoded value for `typedSchema`. */
  typedValue: unknown
  /** `Exit.succeed(decoded)` for `typedSchema`, returned as is by a typed getOrCompute hit. */
  typedExit: Exit.Exit<unknown> | undefined
  /** `Exit.succeed(entry.value)`, returned as is by an untyped getOrCompute hit. */
  readonly valueExit: Exit.Exit<unknown>
}

/** @internal */
export const makeSlot = (entry: Entry): Slot => ({
  entry,
  some: Exit.succeed(Option.some(entry.value)),
  valueExit: Exit.succeed(entry.value),
  typedSchema: undefined,
  typedSome: undefined,
  typedValue: undefined,
  typedExit: undefined
})

/** @internal */
export const memoizeTyped = (slot: Slot, schema: unknown, value: unknown): void => {
  slot.typedSchema = schema
  slot.typedValue = value
  slot.typedSome = Exit.succeed(Option.some(value))
  slot.typedExit = Exit.succeed(value)
}

/**
 * The synchronous access TieredCache uses for the L1 hit path.
 *
 * @internal
 */
export interface FastPath {
  /** The slot if present and not gone at `now` (gone ones are dropped). */
  readonly lookup: (key: string, now: number) => Slot | undefined
  /** Stores an entry; answers its slot (undefined when the entry is already gone). */
  readonly store: (key: string, entry: Entry) => Slot | undefined
  readonly remove: (key: string) => void
  readonly removeWhere: (predicate: (key: string, slot: Slot) => boolean) => number
  readonly clear: () => void
}
