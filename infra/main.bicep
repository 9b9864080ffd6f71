// patchwave on Azure: the Function App running the custom handler and everything it listens
// to or calls, wired with least privilege (issue 8, design §2, §7, §8).
//
//   azd up                       (azure.yaml; parameters from infra/main.parameters.json)
// or
//   az group create -n RG -l LOCATION
//   az deployment group create -g RG -f infra/main.bicep -p infra/az.parameters.json -p codeDeployed=false
//   (deploy the code), then the same deployment without -p codeDeployed=false
//
// Two phases, because some resources need the app's functions to exist: Event Grid validates
// a function destination when it subscribes it, and function keys are kept by the running
// Functions host. A deployment with codeDeployed=false creates everything else; once the code
// is deployed, a deployment with codeDeployed=true (the default) adds the Event Grid
// subscriptions (PatchEvents, DeviceEvents), the rollout-gate action group that posts alerts to
// /api/alerts with the Operator function's key, its example alert rule, and the example Logic
// App. azd does both by itself: its first provision passes false (APP_CODE_DEPLOYED unset),
// and the postdeploy hook in azure.yaml sets APP_CODE_DEPLOYED=true and provisions again. An
// incremental deployment with false never removes what a deployment with true created.

targetScope = 'resourceGroup'

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Prefix of resource names (lowercase letters, digits, hyphens).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'patchwave'

@description('Tags on every resource.')
param tags object = {
  application: 'patchwave'
}

@description('FlexConsumption: serverless, identity-only storage. ElasticPremium: always warm (EP1+), keeps its content on an Azure Files share, which needs shared key access on the storage account.')
@allowed(['FlexConsumption', 'ElasticPremium'])
param hostingPlan string = 'FlexConsumption'

@description('Elastic Premium size (ElasticPremium only).')
@allowed(['EP1', 'EP2', 'EP3'])
param premiumSku string = 'EP1'

@description('Replication of the storage account.')
@allowed(['Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS', 'Standard_ZRS'])
param storageSku string = 'Standard_GRS'

@description('S1 units of the IoT Hub.')
@minValue(1)
param iotHubCapacity int = 1

@description('Turn off the IoT Hub\'s shared access policies (keep false while devices or DPS use SAS keys).')
param iotHubDisableLocalAuth bool = false

@description('Partitions of the twin-change Event Hub.')
@minValue(1)
@maxValue(32)
param twinPartitionCount int = 4

@description('Device Update instance name (PATCHWAVE_ADU_INSTANCE).')
param deviceUpdateInstanceName string = 'fleet'

@description('Object id of the "Azure Device Update" service principal of this tenant, to grant it IoT Hub Data Contributor on the hub (az ad sp list --display-name "Azure Device Update" --query [0].id -o tsv). Empty: grant it by hand.')
param deviceUpdateServicePrincipalId string = ''

@description('Resource groups (this subscription) holding the VMs and Arc-enabled servers patchwave patches. The identity gets its patching roles there and nowhere else, and the maintenance configuration\'s dynamic scope covers them.')
param patchResourceGroups array = []

@description('Machines join the maintenance schedule when they carry this tag...')
param patchTagName string = 'patchwave-schedule'

@description('...with one of these values.')
param patchTagValues array = [
  'weekly'
]

@description('Regions of the dynamic scope; empty for all.')
param patchLocations array = []

@description('Time of this deployment, UTC. Only the default of the maintenance window start uses it; leave it to its default (utcNow is allowed only as a parameter default).')
param deploymentTime string = utcNow('u')

@description('First maintenance window start, "yyyy-MM-dd HH:mm" in maintenanceWindowTimeZone, today or later (the Maintenance API refuses a past start). Empty: 02:00 on the day after the deployment, recomputed at every deployment, so a redeployment on a window\'s own day moves the first window to the next recurrence; set it to pin the start.')
param maintenanceWindowStart string = ''

@description('Maintenance window length, "HH:mm".')
param maintenanceWindowDuration string = '03:00'

@description('Time zone of the window (Windows id).')
param maintenanceWindowTimeZone string = 'UTC'

@description('Weekly recurrence, e.g. "Week Sunday".')
param maintenanceWindowRecurrence string = 'Week Sunday'

@description('Linux classifications to install.')
param linuxClassifications array = [
  'Critical'
  'Security'
]

@description('Windows classifications to install.')
param windowsClassifications array = [
  'Critical'
  'Security'
]

@description('True once the app\'s code is deployed. False creates everything but what needs the functions to exist (Event Grid subscriptions to functions, the rollout-gate action group and its example alert rule, the example Logic App and its function key): the first deployment, before the code. azd passes APP_CODE_DEPLOYED (false until its postdeploy hook sets it).')
param codeDeployed bool = true

@description('E-mail address receiving alerts; empty for none.')
param alertEmail string = ''

@description('The example alert gate rule fires when the IoT Hub\'s connected devices average below this over 5 minutes (1: none connected). A plan naming the rule (output exampleAlertRuleName) in alertRules stops when it fires.')
@minValue(0)
param minConnectedDevices int = 1

@description('Roles of function-key callers (PATCHWAVE_KEY_ROLES).')
param keyRoles string = 'Rollout.Read,Rollout.Operate'

@description('Log filter of the handler (RUST_LOG).')
param logFilter string = 'info'

@description('Client id of the Entra app registration for App Service Authentication; empty leaves it off (approvals then need it turned on).')
param authClientId string = ''

@description('Deploy the example Logic App (needs authClientId for its approval step). It is deployed with codeDeployed=true only: its function key goes through the running host.')
param deployExampleLogicApp bool = false

@description('Value of a function key of its own for the Logic App (key "logicapp", created with this value; at least 32 letters and digits, e.g. openssl rand -hex 32). Keep passing the same value: a new one replaces the key, and Logic App runs started before use the old one. Empty: the Logic App uses the host\'s default function key.')
@secure()
param logicAppFunctionKey string = ''

@description('Webhook the Logic App notifies of pending approvals.')
param approvalNotificationUrl string = ''

var token = uniqueString(resourceGroup().id)

// The Maintenance API takes "yyyy-MM-dd HH:mm" in the window's time zone, today or later. The
// day after the deployment (UTC) is a date that is not past in any time zone.
var windowStart = empty(maintenanceWindowStart) ? '${dateTimeAdd(deploymentTime, 'P1D', 'yyyy-MM-dd')} 02:00' : maintenanceWindowStart
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var names = {
  storage: take('${compactPrefix}${token}', 24)
  workspace: '${namePrefix}-logs-${token}'
  appInsights: '${namePrefix}-ai-${token}'
  eventHubs: '${namePrefix}-ehns-${token}'
  iotHub: '${namePrefix}-hub-${token}'
  deviceUpdate: take('${namePrefix}-adu-${token}', 24)
  plan: '${namePrefix}-plan-${token}'
  functionApp: '${namePrefix}-func-${token}'
  maintenance: '${namePrefix}-hosts-${token}'
  logicApp: '${namePrefix}-approval-${token}'
}

// Must match function-definitions/TwinChanges/function.json (consumerGroup) and the
// PATCHWAVE_TWIN_EVENTHUB_NAME setting; tests/infra.rs checks both.
var twinHubName = 'iothub-twin-changes'
var twinConsumerGroup = 'patchwave'
var lifecycleHubName = 'patchwave-lifecycle'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletters'
var contentShareName = hostingPlan == 'ElasticPremium' ? toLower(names.functionApp) : ''

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSku
    allowSharedKeyAccess: hostingPlan == 'ElasticPremium'
    deploymentContainerName: hostingPlan == 'FlexConsumption' ? deploymentContainerName : ''
    contentShareName: contentShareName
    deadLetterContainerName: deadLetterContainerName
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    name: names.eventHubs
    location: location
    tags: tags
    twinHubName: twinHubName
    twinConsumerGroup: twinConsumerGroup
    lifecycleHubName: lifecycleHubName
    twinPartitionCount: twinPartitionCount
  }
}

module iotHub 'modules/iothub.bicep' = {
  name: 'iothub'
  params: {
    name: names.iotHub
    location: location
    tags: tags
    capacity: iotHubCapacity
    disableLocalAuth: iotHubDisableLocalAuth
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubsFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    twinHubName: eventHubs.outputs.twinHubName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module deviceUpdate 'modules/deviceupdate.bicep' = {
  name: 'deviceupdate'
  params: {
    accountName: names.deviceUpdate
    instanceName: deviceUpdateInstanceName
    location: location
    tags: tags
    iotHubId: iotHub.outputs.id
    workspaceId: monitoring.outputs.workspaceId
    deviceUpdateServicePrincipalId: deviceUpdateServicePrincipalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    // azd deploy finds the service's resource by this tag (azure.yaml: service patchwave)
    siteTags: {
      'azd-service-name': 'patchwave'
    }
    hostingPlan: hostingPlan
    premiumSku: premiumSku
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    contentShareName: contentShareName
    appInsightsConnectionString: monitoring.outputs.connectionString
    tableEndpoint: storage.outputs.tableEndpoint
    aduEndpoint: deviceUpdate.outputs.hostName
    aduInstance: deviceUpdate.outputs.instanceName
    iotHubHostName: iotHub.outputs.hostName
    eventHubsNamespace: eventHubs.outputs.fullyQualifiedNamespace
    twinHubName: eventHubs.outputs.twinHubName
    lifecycleHubName: eventHubs.outputs.lifecycleHubName
    keyRoles: keyRoles
    logFilter: logFilter
    authClientId: authClientId
  }
}

module maintenance 'modules/maintenance.bicep' = {
  name: 'maintenance'
  params: {
    name: names.maintenance
    location: location
    tags: tags
    windowStart: windowStart
    windowDuration: maintenanceWindowDuration
    windowTimeZone: maintenanceWindowTimeZone
    windowRecurrence: maintenanceWindowRecurrence
    linuxClassifications: linuxClassifications
    windowsClassifications: windowsClassifications
    functionAppId: functionApp.outputs.id
    subscribeEvents: codeDeployed
    deadLetterStorageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
  }
}

// IoT Hub connection events to DeviceEvents (health gates): its own system topic on the hub.
module deviceEvents 'modules/deviceevents.bicep' = {
  name: 'deviceevents'
  params: {
    location: location
    tags: tags
    iotHubName: iotHub.outputs.name
    functionAppId: functionApp.outputs.id
    subscribeEvents: codeDeployed
    deadLetterStorageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
  }
}

module maintenanceScope 'modules/maintenance-scope.bicep' = if (!empty(patchResourceGroups)) {
  name: 'maintenance-scope'
  scope: subscription()
  params: {
    name: '${names.maintenance}-dynamic-scope'
    maintenanceConfigurationId: maintenance.outputs.id
    resourceGroups: patchResourceGroups
    tagName: patchTagName
    tagValues: patchTagValues
    locations: patchLocations
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    twinHubName: eventHubs.outputs.twinHubName
    lifecycleHubName: eventHubs.outputs.lifecycleHubName
    iotHubName: iotHub.outputs.name
    deviceUpdateAccountName: deviceUpdate.outputs.accountName
    maintenanceConfigurationName: maintenance.outputs.name
  }
}

module patchingRoles 'modules/patching-roles.bicep' = [
  for group in patchResourceGroups: {
    name: 'patching-roles-${group}'
    scope: resourceGroup(group)
    params: {
      principalId: functionApp.outputs.principalId
    }
  }
]

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
    codeDeployed: codeDeployed
    functionAppId: functionApp.outputs.id
    functionAppUrl: functionApp.outputs.url
    iotHubId: iotHub.outputs.id
    minConnectedDevices: minConnectedDevices
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

module logicApp 'modules/logicapp.bicep' = if (deployExampleLogicApp && codeDeployed) {
  name: 'logicapp'
  params: {
    name: names.logicApp
    location: location
    tags: tags
    functionAppName: functionApp.outputs.name
    functionAppHostName: functionApp.outputs.defaultHostName
    functionKey: logicAppFunctionKey
    operatorApiAudience: empty(authClientId) ? '' : 'api://${authClientId}'
    approvalNotificationUrl: approvalNotificationUrl
  }
  dependsOn: [
    roles
  ]
}

output functionAppName string = functionApp.outputs.name
output functionAppUrl string = functionApp.outputs.url
output functionAppPrincipalId string = functionApp.outputs.principalId
output storageAccountName string = storage.outputs.name
output PATCHWAVE_STORE string = 'table:${storage.outputs.tableEndpoint}'
output PATCHWAVE_ADU_ENDPOINT string = deviceUpdate.outputs.hostName
output PATCHWAVE_ADU_INSTANCE string = deviceUpdate.outputs.instanceName
output PATCHWAVE_IOTHUB_HOST string = iotHub.outputs.hostName
output PATCHWAVE_EVENTHUB_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output PATCHWAVE_EVENTHUB_NAME string = eventHubs.outputs.lifecycleHubName
output PATCHWAVE_TWIN_EVENTHUB_NAME string = eventHubs.outputs.twinHubName
output maintenanceConfigurationId string = maintenance.outputs.id
output iotHubName string = iotHub.outputs.name
output deviceUpdateAccountName string = deviceUpdate.outputs.accountName
output logicAppName string = deployExampleLogicApp && codeDeployed ? logicApp.outputs.name : ''
output logicAppPrincipalId string = deployExampleLogicApp && codeDeployed ? logicApp.outputs.principalId : ''
output maintenanceWindowStart string = windowStart
@description('Example Azure Monitor alert rule on the hub\'s connected devices: name it in a plan\'s alertRules to stop the rollout when it fires. Empty before the code is deployed.')
output exampleAlertRuleName string = alerts.outputs.exampleAlertRuleName
@description('Action group that posts alerts to /api/alerts: add it to any other rule a plan should be able to name. Empty before the code is deployed.')
output rolloutGateActionGroupId string = alerts.outputs.rolloutGateActionGroupId
@description('The Azure Monitor workbook (rollouts by state, decisions, rollbacks, dead letters, failing invocations, patch runs): its resource id, and a portal link to it.')
output workbookId string = workbook.outputs.id
output workbookPortalUrl string = '${environment().portal}/#@/resource${workbook.outputs.id}'
// azd keeps outputs as environment values and drops them at azd down: the next azd up after
// a teardown starts again with the code not deployed (azure.yaml's postdeploy hook reads it).
output APP_CODE_DEPLOYED bool = codeDeployed

// What deleting the resource group leaves behind (README, "Removing it"): keep these values
// before deleting it.
@description('Subscription-scope configuration assignment (the dynamic scope); empty without patchResourceGroups.')
output maintenanceScopeAssignmentId string = empty(patchResourceGroups) ? '' : maintenanceScope.outputs.id
@description('Custom role definition (subscription level) that cancels scheduled runs.')
output maintenanceRunOperatorRoleId string = roles.outputs.cancelRunsRoleDefinitionId
@description('Resource groups where the identity holds patching roles.')
output patchResourceGroups array = patchResourceGroups
