// Alert rules on what patchwave writes to Application Insights, and the action group they call.
//
// patchwave logs JSON lines to stdout (handlers/telemetry.rs) which the Functions host forwards
// as traces; lifecycle events carry types such as `patchwave.rollback.opened` and
// `patchwave.infrastructure.failed` (rollout-core decision kinds), dead letters log
// "dead letter kept" (handlers/service), and every invocation is a request row.

param location string
param tags object
param namePrefix string

@description('Application Insights component the rules query.')
param appInsightsId string

@description('E-mail address that receives the alerts; empty for an action group without receivers.')
param alertEmail string

@description('Dead letters within 15 minutes above which the dead-letter alert fires.')
@minValue(0)
param deadLetterThreshold int = 0

@description('Failed invocations within 15 minutes above which the function-error alert fires.')
@minValue(0)
param functionErrorThreshold int = 0

var operatorEmail = [
  {
    name: 'operators'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take(replace(namePrefix, '-', ''), 12)
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : operatorEmail
  }
}

var rules = [
  {
    name: 'rollback-opened'
    displayName: 'patchwave: rollback opened'
    description: 'A rollout crossed a failure threshold and opened a rollback (lifecycle event patchwave.rollback.opened).'
    severity: 1
    window: 'PT5M'
    threshold: 0
    query: 'traces | where message contains "rollback.opened"'
  }
  {
    name: 'dead-letters-growing'
    displayName: 'patchwave: dead letters growing'
    description: 'Inputs patchwave should have been able to use were kept as dead letters (GET /api/deadletters lists them).'
    severity: 2
    window: 'PT15M'
    threshold: deadLetterThreshold
    query: 'traces | where message contains "dead letter kept"'
  }
  {
    name: 'patch-run-failed'
    displayName: 'patchwave: host patch run failed'
    description: 'An Update Manager run a rollout depends on failed (decision infrastructure.failed, or a PostMaintenanceEvent with status Failed).'
    severity: 1
    window: 'PT15M'
    threshold: 0
    query: 'traces | where message contains "infrastructure.failed" or (message contains "PostMaintenance" and message contains "Failed")'
  }
  {
    name: 'function-errors'
    displayName: 'patchwave: function invocations failing'
    description: 'Invocations the Functions host recorded as failed (the handler answered non-2xx or did not answer).'
    severity: 2
    window: 'PT15M'
    threshold: functionErrorThreshold
    query: 'requests | where success == false'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${namePrefix}-${rule.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsightsId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: rule.window
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: rule.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      autoMitigate: false
      actions: {
        actionGroups: [
          actionGroup.id
        ]
      }
    }
  }
]

output actionGroupId string = actionGroup.id
output ruleNames array = [for (rule, i) in rules: alertRules[i].name]
