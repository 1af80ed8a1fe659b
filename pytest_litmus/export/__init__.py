"""Session records written as other tools read them: CSV, JUnit XML, OpenHTF JSON."""
