//! Cache statistics with the original system's reading of them.

use query_cache::QueryCache;
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::CacheStatsView;

/// Statistics plus an assessment line, as `hotel-stats cache-stats` prints them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheReport {
    /// The raw statistics.
    pub stats: CacheStatsView,
    /// "excellent", "good" or "poor" reuse.
    #[schema(value_type = String, pattern = "^(excellent|good|poor)$")]
    pub assessment: &'static str,
    /// The assessment in words.
    pub assessment_text: String,
}

impl CacheReport {
    /// Reads `cache`'s statistics and assesses them with the original's thresholds: more than
    /// five hits per entry is excellent reuse, more than two good, less poor.
    pub fn of(cache: &QueryCache) -> Self {
        let stats = cache.stats();
        let per_entry = stats.hits_per_entry;
        let (assessment, text) = if per_entry > 5.0 {
            (
                "excellent",
                format!("Excellent - high cache reuse ({per_entry:.1} hits/entry)"),
            )
        } else if per_entry >= 2.0 {
            (
                "good",
                format!("Good - moderate cache reuse ({per_entry:.1} hits/entry)"),
            )
        } else {
            (
                "poor",
                format!(
                    "Poor - low cache reuse ({per_entry:.1} hits/entry): check keys, TTLs and invalidation"
                ),
            )
        };
        Self {
            stats: CacheStatsView::from(&stats),
            assessment,
            assessment_text: text,
        }
    }
}
