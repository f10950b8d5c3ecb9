//! A story's debates begin alike (the story block and the rules come before who speaks):
//! when a signed-in reader opens a story, that beginning is computed ahead, so by the time
//! they have picked two personas and a question their debate's first speech starts from it.
//! Only a backend that keeps prompts (the embedded model) does anything; a story is done at
//! most once in ten minutes ([`AppState::story_prefills`]), not once today's token budget is
//! spent, and the model reads it at low priority, beside the runs in flight.

use crossfire_engine::story::Story;

use crate::state::AppState;

/// Starts computing what `story`'s debates begin with, unless it was done lately.
pub fn story_opened(state: &AppState, story: &Story) {
    let set = state.set();
    // Any two personas: the beginning they share is every pair's.
    let mut personas = set
        .catalog
        .personas
        .values()
        .filter(|p| set.engine.check_persona(p).is_ok());
    let (Some(a), Some(b)) = (personas.next().cloned(), personas.next().cloned()) else {
        return;
    };
    if state
        .story_prefills
        .check(std::slice::from_ref(&story.id))
        .is_err()
    {
        return;
    }
    let (story, state) = (story.clone(), state.clone());
    tokio::spawn(async move {
        if state
            .budget
            .check(&state.store, &state.metrics)
            .await
            .is_err()
        {
            return;
        }
        match set.engine.prefill_story(&story, &a, &b).await {
            Ok(tokens) => {
                state.metrics.story_prefilled(tokens);
                tracing::debug!(story = %story.id, tokens, "story prefilled");
            }
            Err(e) => tracing::warn!(story = %story.id, "cannot prefill the story: {e}"),
        }
    });
}
