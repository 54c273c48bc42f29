"""Model bridge services: registry (registration, health, reference models), scoring
(cached batched scoring), live (one draft against a campaign's models) and bulk."""
