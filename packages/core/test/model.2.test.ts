// The model check (model.ts), part 2 of MODEL_PARTS: the groups whose index in CONFIGS leaves 2.
import { modelCheck } from "./model.js"

modelCheck(2)
