import { Exit, Option } from "effect"
import type { Entry } from "../Entry.js"

/** @internal */
export const FastPathTypeId: unique symbol = Symbol.for("@tiercache/core/MemoryTier/FastPath")

/** A slot's answers decoded under one schema (allocated only once a typed read happened). */
interface Typed {
  readonly schema: unknown
  readonly value: unknown
  some: Exit.Exit<Option.Option<unknown>> | undefined
  exit: Exit.Exit<unknown> | undefined
}

/**
 * A time of an entry kept as its distance from `expiresAt` when adding it back gives the time
 * exactly, else the time itself in a box. Distances are small integers (a grace, a TTL), which V8
 * keeps in the field itself; a time (epoch ms, beyond 2^31) in a field costs a 16-byte boxed
 * number per field.
 */
type Offset = number | { readonly at: number }

const offsetOf = (at: number, from: number): Offset => {
  const d = at - from
  return Object.is(from + d, at) ? d : { at }
}

const timeOf = (offset: Offset, from: number): number =>
  typeof offset === "number" ? from + offset : offset.at

/**
 * What L1 keeps per key: the entry itself (its fields copied, so that L1 holds one object per
 * key instead of an entry and a record pointing to it: 32 B less per key on Node's 8-byte
 * fields) plus the answers a hit returns, each built on the first hit that needs it and kept,
 * so that every later hit allocates nothing. `typed*` memoize the decoding under the last
 * schema used. `staleUntil` and `createdAt` are kept as their distance from `expiresAt` (see
 * Offset: 32 B less per key). The memos are private fields and the two times are accessors: a
 * slot is read through the Entry interface (field by field), never copied as a record; MemoryTier's
 * `get` answers a plain entry (`toEntry`).
 *
 * @internal
 */
export class Slot implements Entry {
  readonly value: unknown
  readonly expiresAt: number
  readonly tags: ReadonlyArray<string>
  readonly #stale: Offset
  readonly #created: Offset
  #someExit: Exit.Exit<Option.Option<unknown>> | undefined = undefined
  #plainExit: Exit.Exit<unknown> | undefined = undefined
  #typed: Typed | undefined = undefined
  constructor(entry: Entry) {
    const expiresAt = entry.expiresAt
    this.value = entry.value
    this.expiresAt = expiresAt
    this.tags = entry.tags
    this.#stale = offsetOf(entry.staleUntil, expiresAt)
    this.#created = offsetOf(entry.createdAt, expiresAt)
  }
  /** Epoch ms at which the entry is gone for good. */
  get staleUntil(): number {
    return timeOf(this.#stale, this.expiresAt)
  }
  /** Epoch ms at which the value was written. */
  get createdAt(): number {
    return timeOf(this.#created, this.expiresAt)
  }
  /** The entry as a plain record (for callers that may copy or serialize it). */
  toEntry(): Entry {
    return {
      value: this.value,
      expiresAt: this.expiresAt,
      staleUntil: this.staleUntil,
      tags: this.tags,
      createdAt: this.createdAt
    }
  }
  /** `Exit.succeed(Option.some(entry.value))`, returned as is by an untyped hit. */
  get some(): Exit.Exit<Option.Option<unknown>> {
    if (this.#someExit === undefined) this.#someExit = Exit.succeed(Option.some(this.value))
    return this.#someExit
  }
  /** `Exit.succeed(entry.value)`, returned as is by an untyped getOrCompute hit. */
  get valueExit(): Exit.Exit<unknown> {
    if (this.#plainExit === undefined) this.#plainExit = Exit.succeed(this.value)
    return this.#plainExit
  }
  /** The schema the typed answer was decoded with. */
  get typedSchema(): unknown {
    return this.#typed?.schema
  }
  /** The decoded value for `typedSchema`. */
  get typedValue(): unknown {
    return this.#typed?.value
  }
  /** `Exit.succeed(Option.some(decoded))` for `typedSchema`. */
  get typedSome(): Exit.Exit<Option.Option<unknown>> | undefined {
    const t = this.#typed
    if (t === undefined) return undefined
    if (t.some === undefined) t.some = Exit.succeed(Option.some(t.value))
    return t.some
  }
  /** `Exit.succeed(decoded)` for `typedSchema`, returned as is by a typed getOrCompute hit. */
  get typedExit(): Exit.Exit<unknown> | undefined {
    const t = this.#typed
    if (t === undefined) return undefined
    if (t.exit === undefined) t.exit = Exit.succeed(t.value)
    return t.exit
  }
  /** Keeps `value` as the decoding under `schema` (replacing any other schema's). */
  memoizeTyped(schema: unknown, value: unknown): void {
    this.#typed = { schema, value, some: undefined, exit: undefined }
  }
}

/** @internal */
export const makeSlot = (entry: Entry): Slot => new Slot(entry)

/**
 * Whether an untyped hit on `slot` at `t` may be answered without `lookup.judgeSlot`: the entry
 * carries no tag and is before its TTL (judgeSlot answers FRESH for it too). The L1 hit paths'
 * one shortcut.
 *
 * @internal
 */
export const isPlainFresh = (slot: Slot, t: number): boolean => slot.tags.length === 0 && t < slot.expiresAt

/**
 * The synchronous access TieredCache uses for the L1 hit path.
 *
 * @internal
 */
export interface FastPath {
  /** The slot if present and not gone at `now` (gone ones are dropped). */
  readonly lookup: (key: string, now: number) => Slot | undefined
  /** Stores an entry; answers its slot (undefined when it was not kept: already gone, or larger than maxBytes). */
  readonly store: (key: string, entry: Entry) => Slot | undefined
  readonly remove: (key: string) => void
  readonly removeWhere: (predicate: (key: string, slot: Slot) => boolean) => number
  readonly clear: () => void
}
