package detect

// State is the engine-maintained state shared by rules. The detect engine
// owner extends it.
type State struct{}
