/// Directives that shape what goes back to the client: `limit_rate`, `limit_rate_after`.
extension Compiler {
    /// A `limit_rate` / `limit_rate_after` size. nginx takes variables here too; lb takes constants.
    func rateSize(_ d: Directive) throws -> Int {
        if d.args[0].text.contains("$") {
            throw ConfigError("variables in \"\(d.name)\" are not supported by lb", at: d.args[0].location)
        }
        return try size(d)
    }
}
