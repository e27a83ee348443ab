/**
 * The work Glob's matchers do, counted for tests that bound it: a matcher must stay linear in the
 * key for a given pattern, since one that backtracks through every split of a long key blocks the
 * event loop for hours (42a08a4). The library never reads it, and a matcher built while
 * `counting` is off (always, outside such tests) pays nothing for it on the regular-expression
 * path; the byte matcher counts one increment per step.
 */

/** `steps`: since a test last set it to 0 (Glob.ts says what a step is). `counting`: set by tests. */
export const globWork = { counting: false, steps: 0 }
