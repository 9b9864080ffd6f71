// Alert rules on what patchwave writes to Application Insights, and the action group they call;
// and the alert gate of rollouts (issue 21): an action group that posts alerts to the Operator
// API's POST /api/alerts, with an example rule on the IoT Hub's connected devices.
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

@description('True once the app\'s code is deployed (main.bicep: codeDeployed). The rollout gate and its example rule need the Operator function and its key, which the running Functions host keeps.')
param codeDeployed bool

@description('Resource id of the Function App serving the Operator API.')
param functionAppId string

@description('Base URL of the Function App (https://<default host name>).')
param functionAppUrl string

@description('Route prefix of the Functions host (host.json extensions.http.routePrefix).')
param routePrefix string = 'api'

@description('IoT Hub whose connected devices the example rule watches.')
param iotHubId string

@description('The example rule fires when the hub\'s connected devices average below this over 5 minutes (1: none connected at all). Set it to the fleet\'s usual count less what may be offline.')
@minValue(0)
param minConnectedDevices int = 1

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
    description: 'An Update Manager run a rollout depends on failed (decision infrastructure.failed, or a post-maintenance event logged with status Failed).'
    severity: 1
    window: 'PT15M'
    threshold: 0
    query: 'traces | where message contains "infrastructure.failed" or (message contains "maintenance event" and message contains \'"phase":"Post"\' and message contains "Failed")'
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

// The alert gate. Azure Monitor posts an alert to POST /api/alerts in the common alert schema
// (useCommonAlertSchema); a Fired alert whose rule a deploying or soaking rollout names in its
// plan's alertRules fails that rollout's current wave.
//
// Receiver: an Azure Function receiver (azureFunctionReceivers) of the catch-all Operator
// function (route {*path}, authLevel function), with httpTriggerUrl the /api/alerts route of
// that function: a key of the Operator function opens every route of it, so any of its routes
// is a valid trigger URL. Action groups read the function's key themselves, through the
// Functions key API, when the action is defined, and keep it with the URL (Azure Monitor's
// action group documentation: ".../api/httptrigger?code=<access_key>"); patchwave takes the
// code parameter as it takes x-functions-key (handlers/api/auth.rs), so the call is a key caller
// with the roles of keyRoles (Rollout.Operate by default). No key is written in this template,
// its parameters or the deployment history, and no listKeys is needed. The key is the one the
// action group read when the action was defined, and Azure Monitor says to remove and re-create
// the action after the function's key changes: after rotating the Operator function's keys,
// delete this action group and provision again (a deployment with codeDeployed=true).
//
// Not a secure webhook (webhookReceivers with useAadAuth): its tokens come from the tenant-wide
// "AzNS AAD Webhook" service principal that every action group of the tenant shares, so giving
// that principal the app role Rollout.Operate would let any action group anyone in the tenant
// creates post to any Operator route with that role; it also needs App Service Authentication
// (authClientId) and an app role assignment made outside Bicep. A function key is specific to
// this app and this function, and works with or without App Service Authentication.
//
// Why a second action group rather than a receiver on the operators' one above: the gate needs
// the Operator function to exist (its key is read from the running host), so it is deployed with
// codeDeployed=true only, like the Event Grid subscriptions; a deployment with
// codeDeployed=false then leaves it as it is, whereas a receiver added to the operators' group
// would be removed again by such a deployment. To let another rule stop rollouts, add this
// group (output rolloutGateActionGroupId) to that rule's actions.
resource rolloutGate 'Microsoft.Insights/actionGroups@2023-01-01' = if (codeDeployed) {
  name: '${namePrefix}-rollout-gate'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: '${take(replace(namePrefix, '-', ''), 8)}gate'
    enabled: true
    azureFunctionReceivers: [
      {
        name: 'patchwave-alerts'
        functionAppResourceId: functionAppId
        functionName: 'Operator'
        httpTriggerUrl: '${functionAppUrl}/${routePrefix}/alerts'
        useCommonAlertSchema: true
      }
    ]
  }
}

// Example gate rule: the hub's connected devices (metric connectedDeviceCount, Average) below
// minConnectedDevices over 5 minutes. A plan that names it in alertRules stops when it fires;
// it also tells the operators. autoMitigate sends Resolved when devices are back (recorded in
// the audit trail only).
resource connectedDevicesLow 'Microsoft.Insights/metricAlerts@2018-03-01' = if (codeDeployed) {
  name: '${namePrefix}-connected-devices-low'
  location: 'global'
  tags: tags
  properties: {
    description: 'Fewer devices connected to the IoT Hub than expected (average of connectedDeviceCount over 5 minutes below ${minConnectedDevices}). Name this rule in a rollout plan\'s alertRules to fail its current wave when it fires.'
    severity: 2
    enabled: true
    scopes: [
      iotHubId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'connected-devices'
          metricNamespace: 'Microsoft.Devices/IotHubs'
          metricName: 'connectedDeviceCount'
          timeAggregation: 'Average'
          operator: 'LessThan'
          threshold: minConnectedDevices
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: rolloutGate.id
      }
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
output ruleNames array = [for (rule, i) in rules: alertRules[i].name]
@description('Action group posting alerts to /api/alerts; empty before the code is deployed.')
output rolloutGateActionGroupId string = codeDeployed ? rolloutGate.id : ''
@description('Name of the example gate rule, for a plan\'s alertRules; empty before the code is deployed.')
output exampleAlertRuleName string = codeDeployed ? connectedDevicesLow.name : ''
