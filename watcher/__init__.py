"""ftwatch: watch fine-tuning jobs and deliver their events."""
